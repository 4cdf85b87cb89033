"""Synthetic camera video: a seeded street/parking/corridor scene with people and vehicles moving.

The demo plays these files as live cameras; tests serve them over RTSP. Rendering uses OpenCV and
the file is H.264 in MP4 (PyAV's libx264), so every decoder (OpenCV, FFmpeg, GStreamer) reads it.
Deterministic: the same seed renders the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

SCENES = ("street", "parking", "corridor")
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Mover:
    """An object crossing the frame on a straight path: class, colour, size and speed in px/frame."""

    cls: str
    color_bgr: tuple[int, int, int]
    size_wh: tuple[int, int]
    start_xy: tuple[float, float]
    velocity_xy: tuple[float, float]
    start_frame: int

    def box_at(self, frame: int) -> tuple[int, int, int, int] | None:
        t = frame - self.start_frame
        if t < 0:
            return None
        x = self.start_xy[0] + self.velocity_xy[0] * t
        y = self.start_xy[1] + self.velocity_xy[1] * t
        w, h = self.size_wh
        return int(x), int(y), int(x + w), int(y + h)


def background(scene: str, size_wh: tuple[int, int], night: bool) -> Image:
    w, h = size_wh
    img = np.zeros((h, w, 3), np.uint8)
    if scene == "street":
        img[:] = (90, 140, 110)
        cv2.rectangle(img, (0, h // 3), (w, 2 * h // 3), (70, 70, 70), -1)
        for x in range(0, w, 60):
            cv2.line(img, (x, h // 2), (x + 30, h // 2), (220, 220, 220), 3)
    elif scene == "parking":
        img[:] = (105, 105, 100)
        for x in range(20, w, 70):
            cv2.line(img, (x, h // 6), (x, h // 2), (230, 230, 230), 2)
            cv2.line(img, (x, h // 2 + 30), (x, 5 * h // 6), (230, 230, 230), 2)
    else:
        img[:] = (170, 180, 190)
        cv2.fillPoly(img, [np.array([[0, 0], [w // 3, h // 3], [w // 3, 2 * h // 3], [0, h]])], (120, 130, 140))
        cv2.fillPoly(img, [np.array([[w, 0], [2 * w // 3, h // 3], [2 * w // 3, 2 * h // 3], [w, h]])], (120, 130, 140))
    if night:
        img = (img * 0.35).astype(np.uint8)
    return img


def draw_mover(img: Image, m: Mover, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box
    if m.cls == "person":
        head_r = max(3, (x2 - x1) // 3)
        cv2.circle(img, ((x1 + x2) // 2, y1 + head_r), head_r, (150, 180, 220), -1)
        cv2.rectangle(img, (x1, y1 + 2 * head_r), (x2, y2), m.color_bgr, -1)
    else:
        cv2.rectangle(img, (x1, y1), (x2, y2), m.color_bgr, -1)
        cv2.rectangle(
            img, (x1 + (x2 - x1) // 4, y1 + 3), (x2 - (x2 - x1) // 4, y1 + (y2 - y1) // 2), (200, 170, 140), -1
        )


def make_movers(rng: np.random.Generator, size_wh: tuple[int, int], frames: int) -> list[Mover]:
    w, h = size_wh
    movers = []
    for i in range(max(2, frames // 20)):
        is_person = rng.random() < 0.6
        size = (
            (int(rng.integers(14, 24)), int(rng.integers(36, 60)))
            if is_person
            else (int(rng.integers(60, 100)), int(rng.integers(30, 45)))
        )
        speed = float(rng.uniform(1.5, 4.0)) if is_person else float(rng.uniform(4.0, 9.0))
        left = rng.random() < 0.5
        y = float(rng.uniform(h * 0.3, h * 0.8 - size[1]))
        movers.append(
            Mover(
                cls="person" if is_person else "car",
                color_bgr=tuple(int(c) for c in rng.integers(30, 230, 3)),  # type: ignore[arg-type]
                size_wh=size,
                start_xy=(-size[0] if left else w, y),
                velocity_xy=(speed if left else -speed, float(rng.uniform(-0.3, 0.3))),
                start_frame=int(i * 20 + rng.integers(0, 15)),
            )
        )
    return movers


def render_frames(
    seed: int, scene: str, seconds: float, fps: int, size_wh: tuple[int, int] = (640, 360), night: bool = False
) -> list[Image]:
    """Render ``seconds * fps`` BGR frames of ``scene`` (one of SCENES)."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    rng = np.random.default_rng(seed)
    frames = round(seconds * fps)
    bg = background(scene, size_wh, night)
    movers = make_movers(rng, size_wh, frames)
    out = []
    for f in range(frames):
        img = bg.copy()
        for m in movers:
            box = m.box_at(f)
            if box is not None:
                draw_mover(img, m, box)
        noise = rng.normal(0, 4, img.shape)
        out.append(np.clip(img + noise, 0, 255).astype(np.uint8))
    return out


def write_mp4(path: Path, frames: list[Image], fps: int) -> Path:
    """Encode BGR frames as H.264 (yuv420p) MP4 with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    # faststart: the index goes first, so the file also streams over HTTP without range requests.
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(fps)}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ensure_video(path: Path, seed: int, scene: str, seconds: float = 20.0, fps: int = 10, night: bool = False) -> Path:
    """Render the video once; later calls reuse the file."""
    if not path.is_file() or path.stat().st_size == 0:
        tmp = path.with_suffix(".tmp.mp4")
        write_mp4(tmp, render_frames(seed, scene, seconds, fps, night=night), fps)
        tmp.replace(path)
    return path
