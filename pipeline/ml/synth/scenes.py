"""The synthetic world's scenes (street, parking lot, corridor; by day or night): where people and
vehicles go in each, and the static background image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.ml.synth.canvas import Image

SCENES = ("street", "parking", "corridor")


@dataclass(frozen=True)
class Layout:
    """Where things go in a scene (foot y ranges as fractions of the frame height)."""

    person_y: tuple[float, float]
    vehicle_lanes: tuple[float, ...]
    parked_rows: tuple[float, ...] = ()
    activity_y: tuple[float, float] | None = None  # where activities happen, if not anywhere in person_y


LAYOUTS = {
    "street": Layout(person_y=(0.76, 0.97), vehicle_lanes=(0.6, 0.7)),
    # Activities in front of the driving lane (cars would hide them) and behind the near parked row.
    "parking": Layout(person_y=(0.55, 0.97), vehicle_lanes=(0.62,), parked_rows=(0.42, 0.86), activity_y=(0.64, 0.71)),
    "corridor": Layout(person_y=(0.58, 0.97), vehicle_lanes=()),
}


def background(scene: str, size_wh: tuple[int, int], night: bool, seed: int = 0) -> Image:
    """The static scene, ``size_wh`` pixels, with seeded variation in colours and layout."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    rng = np.random.default_rng(seed)
    w, h = size_wh
    img = np.zeros((h, w, 3), np.uint8)

    def jitter(c: tuple[int, int, int], amount: int = 18) -> tuple[int, int, int]:
        return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in c)  # type: ignore[return-value]

    windows: list[tuple[int, int, int, int]] = []
    if scene == "street":
        img[:] = jitter((200, 170, 140))  # sky
        x = 0
        while x < w:
            bw, bh = int(rng.integers(60, 130)), int(rng.integers(int(0.2 * h), int(0.38 * h)))
            cv2.rectangle(img, (x, int(0.4 * h) - bh), (x + bw, int(0.4 * h)), jitter((90, 110, 150), 40), -1)
            for wy in range(int(0.4 * h) - bh + 8, int(0.4 * h) - 12, 18):
                for wx in range(x + 8, x + bw - 12, 20):
                    windows.append((wx, wy, wx + 10, wy + 10))
            x += bw + int(rng.integers(2, 12))
        cv2.rectangle(img, (0, int(0.4 * h)), (w, int(0.48 * h)), jitter((160, 165, 170)), -1)  # far sidewalk
        cv2.rectangle(img, (0, int(0.48 * h)), (w, int(0.74 * h)), jitter((70, 70, 72), 10), -1)  # road
        for x in range(int(rng.integers(0, 40)), w, 70):
            cv2.line(img, (x, int(0.61 * h)), (x + 35, int(0.61 * h)), (225, 225, 225), 3)
        cv2.rectangle(img, (0, int(0.74 * h)), (w, h), jitter((150, 158, 165)), -1)  # near sidewalk
        for x in range(0, w, int(rng.integers(40, 70))):
            cv2.line(img, (x, int(0.74 * h)), (x - 20, h), (125, 130, 138), 1)
    elif scene == "parking":
        img[:] = jitter((95, 98, 100), 12)
        cv2.rectangle(img, (0, 0), (w, int(0.22 * h)), jitter((70, 140, 90), 25), -1)  # grass verge
        cv2.rectangle(img, (0, int(0.22 * h)), (w, int(0.25 * h)), (190, 190, 185), -1)  # kerb
        step = int(rng.integers(85, 115))
        for x in range(int(rng.integers(0, step)), w + step, step):
            cv2.line(img, (x, int(0.27 * h)), (x - 10, int(0.47 * h)), (215, 215, 215), 2)
            cv2.line(img, (x, int(0.76 * h)), (x + 10, h), (215, 215, 215), 2)
        cv2.line(img, (0, int(0.62 * h)), (w, int(0.62 * h)), (40, 190, 220), 1)
        for x in range(0, w, 9):
            cv2.line(img, (x, int(0.05 * h)), (x, int(0.2 * h)), (60, 80, 60), 1)  # fence
    else:
        img[:] = jitter((175, 185, 195))
        floor = np.array([[0, h], [w, h], [int(0.66 * w), int(0.45 * h)], [int(0.34 * w), int(0.45 * h)]])
        cv2.fillPoly(img, [floor], jitter((120, 135, 150), 25))
        for k in range(1, 9):
            y = int(0.45 * h + (h - 0.45 * h) * (k / 9) ** 1.6)
            cv2.line(img, (0, y), (w, y), (100, 112, 125), 1)
        cv2.fillPoly(
            img,
            [np.array([[0, 0], [int(0.34 * w), int(0.3 * h)], [int(0.34 * w), int(0.45 * h)], [0, h]])],
            jitter((140, 150, 160)),
        )
        cv2.fillPoly(
            img,
            [np.array([[w, 0], [int(0.66 * w), int(0.3 * h)], [int(0.66 * w), int(0.45 * h)], [w, h]])],
            jitter((140, 150, 160)),
        )
        cv2.rectangle(img, (int(0.34 * w), int(0.3 * h)), (int(0.66 * w), int(0.45 * h)), jitter((110, 120, 130)), -1)
        for side in (1, -1):
            for k in range(int(rng.integers(1, 3))):
                x0 = int(0.06 * w + k * 0.12 * w) if side == 1 else int(w - 0.06 * w - k * 0.12 * w)
                x1 = x0 + side * int(0.06 * w)
                cv2.rectangle(img, (min(x0, x1), int(0.25 * h)), (max(x0, x1), int(0.7 * h)), jitter((60, 90, 120)), -1)
        for k in range(4):
            cx = w // 2
            cy = int(0.05 * h + k * 0.06 * h)
            cv2.ellipse(img, (cx, cy), (int(0.12 * w * (1 - k * 0.2)), 3), 0, 0, 360, (240, 250, 255), -1)
    if night:
        img = (img.astype(np.float32) * np.array([0.42, 0.32, 0.3], np.float32)).astype(np.uint8)
        for x1, y1, x2, y2 in windows:
            if rng.random() < 0.4:
                cv2.rectangle(img, (x1, y1), (x2, y2), (90, 200, 240), -1)
    else:
        for x1, y1, x2, y2 in windows:
            cv2.rectangle(img, (x1, y1), (x2, y2), (150, 130, 110), -1)
    return img
