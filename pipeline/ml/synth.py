"""A labelled synthetic world: seeded camera-like video with exact ground truth.

Each video is one scene (street, parking lot or corridor, by day or night) with people, vehicles
and bags moving on plausible paths, and scripted activities (fall, loiter, run, abandoned_object,
crowd; ``normal`` otherwise) with exact start and end frames. Rendering is OpenCV on a canvas a
little larger than the frame (so a shaky camera is a moving crop), then lighting drift, sensor
noise, optional blur, and H.264 compression (PyAV's libx264) when written.

Ground truth (``vigil-synth/1``, one JSON per video, written with sorted keys so the same seed
gives the same bytes)::

    {"format": "vigil-synth/1", "video": "v0003.mp4", "seed": 1234, "fps": 10,
     "width": 640, "height": 360, "num_frames": 300, "scene": "street", "night": false,
     "shaky": true, "classes": ["person", "vehicle", "bag"],
     "activities": [{"label": "fall", "start_frame": 52, "end_frame": 97, "track_ids": [7]}],
     "frames": [{"frame": 0, "scene": "street",
                 "objects": [{"track_id": 1, "class": "person", "xyxy": [x1, y1, x2, y2],
                              "visibility": 0.93}]}]}

Boxes are pixel ``xyxy`` in the written frame, computed from the very points that are drawn
(clipped to the frame); objects less than 35 % inside the frame or less than 25 % visible behind
others are left out. Frames outside every activity are ``normal``. Everything is deterministic in
the seed: ``render_video(seed, ...)`` renders the same frames and ground truth every time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

SCENES = ("street", "parking", "corridor")
CLASSES = ("person", "vehicle", "bag")
ACTIVITIES = ("normal", "fall", "loiter", "run", "abandoned_object", "crowd")
GT_FORMAT = "vigil-synth/1"
Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

MARGIN = 12  # canvas margin (px) around the frame: room for the shaky-camera crop
MIN_INSIDE = 0.35  # minimum fraction of a box inside the frame for it to be ground truth
MIN_VISIBLE = 0.25  # minimum fraction of an object's pixels not hidden by nearer objects
LOITER_DWELL_S = 3.0  # a person in one area this long starts loitering


# -- geometry of drawn shapes ----------------------------------------------------------------------


@dataclass
class Shape:
    """What one object draws this frame: filled polygons, thick lines and discs, in canvas pixels."""

    polys: list[tuple[npt.NDArray[np.int32], tuple[int, int, int]]] = field(default_factory=list)
    lines: list[tuple[Point, Point, int, tuple[int, int, int]]] = field(default_factory=list)
    discs: list[tuple[Point, int, tuple[int, int, int]]] = field(default_factory=list)

    def draw(self, img: npt.NDArray[Any], color: tuple[int, int, int] | None = None) -> None:
        """Draw on ``img``; ``color`` overrides every part's colour (for masks)."""
        for pts, c in self.polys:
            cv2.fillPoly(img, [pts], color or c)
        for a, b, t, c in self.lines:
            cv2.line(img, _ipt(a), _ipt(b), color or c, t)
        for centre, r, c in self.discs:
            cv2.circle(img, _ipt(centre), r, color or c, -1)

    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding box of every drawn pixel (line thickness and disc radius included)."""
        xs: list[float] = []
        ys: list[float] = []
        for pts, _ in self.polys:
            xs += pts[:, 0].tolist()
            ys += pts[:, 1].tolist()
        for a, b, t, _ in self.lines:
            half = t / 2
            for p in (_ipt(a), _ipt(b)):
                xs += [p[0] - half, p[0] + half]
                ys += [p[1] - half, p[1] + half]
        for centre, r, _ in self.discs:
            cx, cy = _ipt(centre)
            xs += [cx - r, cx + r]
            ys += [cy - r, cy + r]
        return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def _ipt(p: Point) -> tuple[int, int]:
    return round(p[0]), round(p[1])


def _rotate(points: list[Point], angle_deg: float, origin: Point) -> list[Point]:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    return [(origin[0] + x * ca - y * sa, origin[1] + x * sa + y * ca) for x, y in points]


# -- actors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A waypoint: at ``frame`` the actor's foot point is (x, y); ``pose`` holds until the next key."""

    frame: int
    x: float
    y: float
    pose: str = "walk"  # person: walk | run | stand | fall | lie | rise; vehicle: drive; bag: ground


@dataclass
class Actor:
    """One object with a scripted path. Visible from its first key's frame to its last key's."""

    track_id: int
    cls: str
    color: tuple[int, int, int]
    height: float  # at perspective scale 1
    width: float
    keys: list[Key]
    fall_dir: int = 1
    carrier: Actor | None = None  # bags: carried by this actor between carry_frames
    carry_frames: tuple[int, int] = (0, -1)

    def state(self, f: int) -> tuple[float, float, str, float, float] | None:
        """(x, y, pose, progress within the pose segment, distance walked) at frame ``f``."""
        if self.carrier is not None and self.carry_frames[0] <= f <= self.carry_frames[1]:
            st = self.carrier.state(f)
            if st is None:
                return None
            direction = self.carrier.heading(f)
            return st[0] + direction * 0.45 * self.carrier.width, st[1] - 0.33 * self.carrier.height, "carried", 0, 0
        if not self.keys or f < self.keys[0].frame or f > self.keys[-1].frame:
            return None
        dist = 0.0
        for a, b in pairwise(self.keys):
            if f <= b.frame:
                t = (f - a.frame) / max(1, b.frame - a.frame)
                x, y = a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t
                return x, y, a.pose, t, dist + math.hypot(x - a.x, y - a.y)
            dist += math.hypot(b.x - a.x, b.y - a.y)
        last = self.keys[-1]
        return last.x, last.y, last.pose, 1.0, dist

    def heading(self, f: int) -> int:
        """+1 moving right, -1 left (the last horizontal direction of travel)."""
        for a, b in pairwise(self.keys):
            if f <= b.frame and b.x != a.x:
                return 1 if b.x > a.x else -1
        moves = [b.x - a.x for a, b in pairwise(self.keys) if b.x != a.x]
        return 1 if not moves or moves[-1] > 0 else -1


def perspective(y: float, frame_h: int) -> float:
    """Objects lower in the frame are nearer and larger."""
    return float(np.clip(0.45 + 0.8 * (y - 0.35 * frame_h) / (0.65 * frame_h), 0.4, 1.3))


def person_shape(actor: Actor, x: float, y: float, pose: str, t: float, dist: float, s: float, f: int) -> Shape:
    h, w = actor.height * s, actor.width * s
    r = 0.11 * h
    angle = {"fall": 90 * t, "lie": 90.0, "rise": 90 * (1 - t)}.get(pose, 0.0) * actor.fall_dir
    heading = actor.heading(f)
    if pose == "run":
        angle = 12.0 * heading
    amp = {"walk": 0.22, "run": 0.42}.get(pose, 0.0) * h
    phase = dist / max(1.0, 0.45 * h) * math.pi
    swing = amp * math.sin(phase)
    pts = [
        (0.0, -h + r),  # head centre
        (-w / 2, -h + 2 * r),
        (w / 2, -h + 2 * r),
        (0.45 * w, -0.47 * h),
        (-0.45 * w, -0.47 * h),  # torso
        (-w / 4, -0.47 * h),
        (-w / 4 + swing, 0.0),  # left leg
        (w / 4, -0.47 * h),
        (w / 4 - swing, 0.0),  # right leg
        (-w / 2, -h + 2.3 * r),
        (-w / 2 - 0.6 * swing, -0.5 * h),  # arms
        (w / 2, -h + 2.3 * r),
        (w / 2 + 0.6 * swing, -0.5 * h),
    ]
    p = _rotate(pts, angle, (0.0, 0.0))
    p = [(x + px, y + py) for px, py in p]
    skin = (150, 175, 215)
    legs = tuple(int(c * 0.55) for c in actor.color)
    leg_t, arm_t = max(2, round(w / 3)), max(2, round(w / 5))
    shape = Shape()
    shape.lines += [(p[5], p[6], leg_t, legs), (p[7], p[8], leg_t, legs)]  # type: ignore[list-item]
    shape.lines += [(p[9], p[10], arm_t, actor.color), (p[11], p[12], arm_t, actor.color)]
    shape.polys.append((np.array([_ipt(q) for q in p[1:5]], np.int32), actor.color))
    shape.discs.append((p[0], max(2, round(r)), skin))
    return shape


def vehicle_shape(actor: Actor, x: float, y: float, s: float, f: int, night: bool) -> Shape:
    length, h = actor.width * s, actor.height * s
    d = actor.heading(f)
    wheel_r = max(3, round(0.2 * h))
    body_top, body_bot = y - 0.75 * h, y - wheel_r * 0.8
    x1, x2 = x - length / 2, x + length / 2
    shape = Shape()
    shape.polys.append(
        (np.array([_ipt(q) for q in ((x1, body_top), (x2, body_top), (x2, body_bot), (x1, body_bot))]), actor.color)
    )
    cab = [
        (x - 0.3 * length, body_top),
        (x + 0.25 * length, body_top),
        (x + 0.12 * length, y - h),
        (x - 0.2 * length, y - h),
    ]
    if d < 0:
        cab = [(2 * x - px, py) for px, py in cab]
    shade = (int(actor.color[0] * 0.8), int(actor.color[1] * 0.8), int(actor.color[2] * 0.8))
    shape.polys.append((np.array([_ipt(q) for q in cab], np.int32), shade))
    win = [(px * 0.8 + x * 0.2, py * 0.75 + (body_top * 0.25)) for px, py in cab]
    shape.polys.append((np.array([_ipt(q) for q in win], np.int32), (200, 170, 120) if not night else (60, 60, 50)))
    for wx in (x1 + 0.2 * length, x2 - 0.2 * length):
        shape.discs.append(((wx, y - wheel_r), wheel_r, (25, 25, 25)))
    lamp = (x2 - 3, body_top + 0.3 * h) if d > 0 else (x1 + 3, body_top + 0.3 * h)
    shape.discs.append((lamp, max(2, round(0.08 * h)), (120, 235, 255) if night else (190, 210, 220)))
    return shape


def bag_shape(actor: Actor, x: float, y: float, s: float) -> Shape:
    w, h = actor.width * s, actor.height * s
    shape = Shape()
    body = [(x - w / 2, y - 0.75 * h), (x + w / 2, y - 0.75 * h), (x + w / 2, y), (x - w / 2, y)]
    shape.polys.append((np.array([_ipt(q) for q in body], np.int32), actor.color))
    t = max(2, round(0.1 * h))
    handle = [
        (x - 0.25 * w, y - 0.75 * h),
        (x - 0.2 * w, y - h + t / 2),
        (x + 0.2 * w, y - h + t / 2),
        (x + 0.25 * w, y - 0.75 * h),
    ]
    for a, b in pairwise(handle):
        shape.lines.append((a, b, t, tuple(int(c * 0.6) for c in actor.color)))  # type: ignore[arg-type]
    # A light band across the body (a strap, a zip): bags stay visible on dark ground at night.
    band = [(x - w / 2, y - 0.45 * h), (x + w / 2, y - 0.45 * h), (x + w / 2, y - 0.3 * h), (x - w / 2, y - 0.3 * h)]
    shape.polys.append((np.array([_ipt(q) for q in band], np.int32), (215, 225, 230)))
    return shape


def actor_shape(actor: Actor, f: int, frame_h: int, night: bool) -> tuple[Shape, float] | None:
    """The actor's drawing at frame ``f`` (canvas coordinates) and its depth (foot y), or None."""
    st = actor.state(f)
    if st is None:
        return None
    x, y, pose, t, dist = st
    cx, cy = x + MARGIN, y + MARGIN
    if actor.cls == "person":
        return person_shape(actor, cx, cy, pose, t, dist, perspective(y, frame_h), f), y
    if actor.cls == "vehicle":
        return vehicle_shape(actor, cx, cy, perspective(y, frame_h), f, night), y
    s = perspective(actor.carrier.state(f)[1] if pose == "carried" and actor.carrier else y, frame_h)  # type: ignore[index]
    depth = y + 0.33 * actor.carrier.height if pose == "carried" and actor.carrier else y
    return bag_shape(actor, cx, cy, s), depth + 0.01


# -- scenes ----------------------------------------------------------------------------------------


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


# -- scripting a video -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    label: str
    start_frame: int
    end_frame: int
    track_ids: tuple[int, ...]


@dataclass
class Script:
    """Everything in one video: its actors and its activity segments."""

    scene: str
    night: bool
    size_wh: tuple[int, int]
    fps: int
    num_frames: int
    actors: list[Actor] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    _next_id: int = 1

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


class Director:
    """Writes a video's script: background traffic, then activities in non-overlapping slots."""

    def __init__(self, rng: np.random.Generator, script: Script) -> None:
        self.rng, self.s = rng, script
        self.w, self.h = script.size_wh
        self.fps = script.fps

    def sec(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))

    def color(self) -> tuple[int, int, int]:
        return tuple(int(c) for c in self.rng.integers(25, 235, 3))  # type: ignore[return-value]

    def person(self, keys: list[Key]) -> Actor:
        """A background person (gets a track id now; activity actors get theirs when committed)."""
        a = self._person(keys, self.s.new_id())
        self.s.actors.append(a)
        return a

    def bag(self) -> Actor:
        a = self._bag(self.s.new_id())
        self.s.actors.append(a)
        return a

    def person_y(self, activity: bool = False) -> float:
        layout = LAYOUTS[self.s.scene]
        lo, hi = layout.activity_y if activity and layout.activity_y else layout.person_y
        return float(self.rng.uniform(lo, hi)) * self.h

    def walk_keys(
        self,
        start: int,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        speed: float,
        pose: str = "walk",
    ) -> list[Key]:
        """Keys for moving from (x0, y0) to (x1, y1) at ``speed`` px/s (at scale 1), starting at ``start``."""
        s = perspective((y0 + y1) / 2, self.h)
        frames = max(1, round(math.hypot(x1 - x0, y1 - y0) / (speed * s) * self.fps))
        return [Key(start, x0, y0, pose), Key(start + frames, x1, y1, pose)]

    def offscreen_x(self, left: bool) -> float:
        return -40.0 if left else self.w + 40.0

    # background traffic -------------------------------------------------------------------

    def traffic(self) -> None:
        n = self.s.num_frames
        f = int(self.rng.integers(0, self.sec(2)))
        while f < n:
            left = self.rng.random() < 0.5
            y = self.person_y()
            speed = float(self.rng.uniform(38, 62))
            walker = self.person(
                self.walk_keys(
                    f,
                    self.offscreen_x(left),
                    y,
                    self.offscreen_x(not left),
                    y + float(self.rng.uniform(-15, 15)),
                    speed,
                )
            )
            if self.rng.random() < 0.3:
                bag = self.bag()
                bag.carrier, bag.carry_frames = walker, (walker.keys[0].frame, walker.keys[-1].frame)
            f += self.sec(float(self.rng.uniform(2.5, 6.0)))
        layout = LAYOUTS[self.s.scene]
        for lane in layout.vehicle_lanes:
            f = int(self.rng.integers(0, self.sec(4)))
            slow = self.s.scene == "parking"
            while f < n:
                left = self.rng.random() < 0.5
                speed = float(self.rng.uniform(50, 90) if slow else self.rng.uniform(120, 240))
                keys = self.walk_keys(
                    f,
                    -120 if left else self.w + 120,
                    lane * self.h,
                    self.w + 120 if left else -120,
                    lane * self.h,
                    speed,
                    "drive",
                )
                self.s.actors.append(
                    Actor(
                        self.s.new_id(),
                        "vehicle",
                        self.color(),
                        float(self.rng.uniform(46, 60)),
                        float(self.rng.uniform(110, 160)),
                        keys,
                    )
                )
                f += self.sec(float(self.rng.uniform(6, 12) if slow else self.rng.uniform(3, 8)))
        for row in layout.parked_rows:
            x = float(self.rng.uniform(40, 120))
            while x < self.w - 60:
                if self.rng.random() < 0.6:
                    keys = [Key(0, x, row * self.h, "drive"), Key(n - 1, x, row * self.h, "drive")]
                    self.s.actors.append(
                        Actor(
                            self.s.new_id(),
                            "vehicle",
                            self.color(),
                            float(self.rng.uniform(46, 58)),
                            float(self.rng.uniform(100, 130)),
                            keys,
                        )
                    )
                x += float(self.rng.uniform(120, 160))

    # activities ---------------------------------------------------------------------------
    # Each act_* draws all its randomness up front and returns a Plan laid out from frame 0; the
    # schedule shifts it so that ground-truth segments are at least GAP_S apart (lead-ins and
    # lead-outs of neighbouring activities may overlap: that is background traffic).

    GAP_S = 3.0

    def schedule(self, order: list[str]) -> None:
        prev_end = -self.sec(self.GAP_S) + self.sec(float(self.rng.uniform(0.5, 2.0)))
        for label in order:
            plan: Plan = getattr(self, f"act_{label}")()
            offset = prev_end + self.sec(self.GAP_S + float(self.rng.uniform(0, 1.5))) - plan.seg_start
            offset = max(offset, -plan.seg_start + self.sec(0.5))
            if plan.seg_end + offset >= self.s.num_frames - 1:
                continue
            self.commit(plan, offset)
            prev_end = plan.seg_end + offset

    def commit(self, plan: Plan, offset: int) -> None:
        ids: dict[int, int] = {}
        carriers: dict[int, Actor] = {}
        for k, actor in enumerate(plan.actors):
            actor.keys = [Key(key.frame + offset, key.x, key.y, key.pose) for key in actor.keys]
            actor.carry_frames = (actor.carry_frames[0] + offset, actor.carry_frames[1] + offset)
            if actor.track_id not in ids:
                ids[actor.track_id] = self.s.new_id()
            actor.track_id = ids[actor.track_id]
            carriers[k] = actor
            self.s.actors.append(actor)
        self.s.activities.append(
            Activity(plan.label, plan.seg_start + offset, plan.seg_end + offset, tuple(ids[t] for t in plan.track_ids))
        )

    def _person(self, keys: list[Key], track_id: int) -> Actor:
        return Actor(
            track_id,
            "person",
            self.color(),
            float(self.rng.uniform(66, 86)),
            float(self.rng.uniform(18, 26)),
            _dedupe(keys),
            fall_dir=1 if self.rng.random() < 0.5 else -1,
        )

    def _bag(self, track_id: int) -> Actor:
        return Actor(
            track_id, "bag", self.bag_color(), float(self.rng.uniform(22, 30)), float(self.rng.uniform(24, 34)), []
        )

    def bag_color(self) -> tuple[int, int, int]:
        """Saturated colours (red, blue, orange, ...) at varied brightness."""
        hue = int(self.rng.integers(0, 180))
        hsv = np.array([[[hue, int(self.rng.integers(150, 256)), int(self.rng.integers(120, 230))]]], np.uint8)
        b, g, r = (int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
        return b, g, r

    def _spot(self, left: bool) -> tuple[float, float]:
        """A place not far from the side the actor enters from."""
        x = float(self.rng.uniform(0.2, 0.5)) * self.w
        return (x if left else self.w - x), self.person_y(activity=True)

    def _walk_in(self, left: bool, x: float, y: float) -> list[Key]:
        return self.walk_keys(0, self.offscreen_x(left), y, x, y, float(self.rng.uniform(55, 75)))

    def act_fall(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t_fall = walk_in[-1].frame
        t_lie = t_fall + self.sec(0.5)
        t_rise = t_lie + self.sec(float(self.rng.uniform(3.5, 5.5)))
        t_up = t_rise + self.sec(0.6)
        out = self.walk_keys(t_up, x, y, self.offscreen_x(not left), y, float(self.rng.uniform(50, 70)))
        keys = [
            walk_in[0],
            Key(t_fall, x, y, "fall"),
            Key(t_lie, x, y, "lie"),
            Key(t_rise, x, y, "rise"),
            Key(t_up, x, y, "walk"),
            out[-1],
        ]
        return Plan("fall", t_fall, t_rise, [self._person(keys, 0)], (0,))

    def act_loiter(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t0 = walk_in[-1].frame
        keys = [walk_in[0]]
        t, end = t0, t0 + self.sec(float(self.rng.uniform(8, 12)))
        cx, cy = x, y
        lo, hi = (v * self.h for v in LAYOUTS[self.s.scene].person_y)
        while t < end:
            if self.rng.random() < 0.4:
                keys.append(Key(t, cx, cy, "stand"))
                t += self.sec(float(self.rng.uniform(0.8, 2.0)))
            else:
                nx = float(np.clip(x + self.rng.uniform(-40, 40), 30, self.w - 30))
                ny = float(np.clip(y + self.rng.uniform(-12, 12), lo, hi))
                step = self.walk_keys(t, cx, cy, nx, ny, float(self.rng.uniform(14, 24)))
                keys.append(Key(t, cx, cy, "walk"))
                t, cx, cy = step[-1].frame, nx, ny
        keys.append(Key(t, cx, cy, "walk"))
        keys.append(self.walk_keys(t, cx, cy, self.offscreen_x(not left), cy, float(self.rng.uniform(50, 70)))[-1])
        # Loitering is staying a while: the segment starts after LOITER_DWELL_S in the area.
        return Plan("loiter", t0 + self.sec(LOITER_DWELL_S), t, [self._person(keys, 0)], (0,))

    def act_run(self) -> Plan:
        y = self.person_y()
        left = self.rng.random() < 0.5
        keys = self.walk_keys(
            0,
            self.offscreen_x(left),
            y,
            self.offscreen_x(not left),
            y + float(self.rng.uniform(-20, 20)),
            float(self.rng.uniform(170, 230)),
            "run",
        )
        # Ground truth: while the runner is in the frame.
        margin = round(40 / (200 * perspective(y, self.h)) * self.fps)
        return Plan("run", keys[0].frame + margin, keys[-1].frame - margin, [self._person(keys, 0)], (0,))

    def act_abandoned_object(self) -> Plan:
        left = self.rng.random() < 0.5
        x, y = self._spot(left)
        walk_in = self._walk_in(left, x, y)
        t_drop = walk_in[-1].frame + self.sec(0.5)
        out = self.walk_keys(t_drop, x, y, self.offscreen_x(not left), y, float(self.rng.uniform(50, 65)))
        t_pick = t_drop + self.sec(float(self.rng.uniform(8, 12)))
        from_left = self.rng.random() < 0.5
        pick_in = self.walk_keys(0, self.offscreen_x(from_left), y, x, y, float(self.rng.uniform(50, 65)))
        arrive = pick_in[-1].frame - pick_in[0].frame
        t_go = t_pick + self.sec(0.3)
        pick_out = self.walk_keys(t_go, x, y, self.offscreen_x(not from_left), y, 55)
        owner = self._person([walk_in[0], Key(walk_in[-1].frame, x, y, "stand"), Key(t_drop, x, y, "walk"), out[-1]], 0)
        picker = self._person(
            [
                Key(t_pick - arrive, pick_in[0].x, y, "walk"),
                Key(t_pick, x, y, "stand"),
                Key(t_go, x, y, "walk"),
                pick_out[-1],
            ],
            1,
        )
        bag = self._bag(2)
        bag_x = x + (1 if left else -1) * 0.45 * owner.width * perspective(y, self.h)
        bag.carrier, bag.carry_frames = owner, (owner.keys[0].frame, t_drop - 1)
        bag.keys = [Key(t_drop, bag_x, y, "ground"), Key(t_pick, bag_x, y, "ground")]
        # The picker carries the same bag away: same track id, a second carried segment.
        away = Actor(
            2,
            "bag",
            bag.color,
            bag.height,
            bag.width,
            [],
            carrier=picker,
            carry_frames=(t_pick + 1, pick_out[-1].frame),
        )
        return Plan("abandoned_object", t_drop, t_pick, [owner, picker, bag, away], (0, 2))

    def act_crowd(self) -> Plan:
        cx, cy = float(self.rng.uniform(0.3, 0.7)) * self.w, self.person_y(activity=True)
        n = int(self.rng.integers(4, 7))
        t_arrive = self.sec(3.0)
        t_leave = t_arrive + self.sec(float(self.rng.uniform(6, 9)))
        actors = []
        for i in range(n):
            ang = 2 * math.pi * i / n + float(self.rng.uniform(-0.3, 0.3))
            tx, ty = cx + 34 * math.cos(ang), cy + 10 * math.sin(ang)
            left = bool(tx < cx) if self.rng.random() < 0.8 else bool(self.rng.random() < 0.5)
            x0 = self.offscreen_x(left)
            speed = float(self.rng.uniform(50, 70))
            walk_frames = max(1, round(abs(tx - x0) / (speed * perspective(ty, self.h)) * self.fps))
            arrive = t_arrive + int(self.rng.integers(-self.sec(0.5), self.sec(0.5) + 1))
            keys = [Key(arrive - walk_frames, x0, ty, "walk"), Key(arrive, tx, ty, "stand")]
            t = arrive
            while t < t_leave:
                t += self.sec(float(self.rng.uniform(1.0, 2.0)))
                keys.append(Key(min(t, t_leave), tx + float(self.rng.uniform(-4, 4)), ty, "stand"))
            keys.append(Key(t_leave, keys[-1].x, ty, "walk"))
            keys.append(self.walk_keys(t_leave, keys[-1].x, ty, self.offscreen_x(not left), ty, speed)[-1])
            actors.append(self._person(keys, i))
        return Plan("crowd", t_arrive + self.sec(0.5), t_leave, actors, tuple(range(n)))


@dataclass
class Plan:
    """An activity laid out from frame 0: its actors (with local ids) and ground-truth segment."""

    label: str
    seg_start: int
    seg_end: int
    actors: list[Actor]
    track_ids: tuple[int, ...]


def _dedupe(keys: list[Key]) -> list[Key]:
    """Keep keys in strictly increasing frame order (a later key at the same frame wins)."""
    out: list[Key] = []
    for k in keys:
        if out and k.frame <= out[-1].frame:
            if k.frame == out[-1].frame:
                out[-1] = k
            continue
        out.append(k)
    return out


def make_script(
    seed: int,
    scene: str,
    night: bool,
    seconds: float,
    fps: int,
    size_wh: tuple[int, int],
    order: list[str] | None = None,
) -> Script:
    rng = np.random.default_rng(seed)
    script = Script(scene, night, size_wh, fps, round(seconds * fps))
    director = Director(rng, script)
    director.traffic()
    if order is None:
        acts = list(ACTIVITIES[1:])
        rng.shuffle(acts)
        order = acts
    director.schedule(order)
    return script


# -- rendering -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """Per-video camera look: shake, lighting drift, noise, blur."""

    shaky: bool
    drift_amp: float
    drift_period_s: float
    noise_sigma: float
    blur: int  # 0 or an odd Gaussian kernel size


def make_look(rng: np.random.Generator, night: bool) -> Look:
    return Look(
        shaky=bool(rng.random() < 0.35),
        drift_amp=float(rng.uniform(0.03, 0.15)),
        drift_period_s=float(rng.uniform(8, 30)),
        noise_sigma=float(rng.uniform(5, 9) if night else rng.uniform(2, 5)),
        blur=int(rng.choice([0, 0, 3, 5])),
    )


def render_video(
    seed: int,
    scene: str,
    night: bool = False,
    seconds: float = 30.0,
    fps: int = 10,
    size_wh: tuple[int, int] = (640, 360),
    order: list[str] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[Image], dict[str, Any]]:
    """Render a video and its ground truth (see the module docstring for the format)."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    rng = np.random.default_rng([seed, 1])
    w, h = size_wh
    script = make_script(seed, scene, night, seconds, fps, size_wh, order)
    look = make_look(rng, night)
    bg = background(scene, (w + 2 * MARGIN, h + 2 * MARGIN), night, seed=seed)
    phase = float(rng.uniform(0, 2 * math.pi))
    frames: list[Image] = []
    gt_frames: list[dict[str, Any]] = []
    for f in range(script.num_frames):
        canvas = bg.copy()
        ids = np.zeros(canvas.shape[:2], np.int16)
        drawn = sorted(
            ((sd[1], i, sd[0]) for i, a in enumerate(script.actors) if (sd := actor_shape(a, f, h, night)) is not None),
            key=lambda t: (t[0], t[1]),
        )
        for k, (_, _, shape) in enumerate(drawn, start=1):
            shape.draw(canvas)
            shape.draw(ids, (k, k, k))
        visible = np.bincount(ids.ravel(), minlength=len(drawn) + 1)
        if look.shaky:
            dx = round(MARGIN * 0.5 * math.sin(2 * math.pi * f / (fps * 3.1) + phase))
            dy = round(MARGIN * 0.35 * math.sin(2 * math.pi * f / (fps * 2.3) + 2 * phase))
        else:
            dx = dy = 0
        ox, oy = MARGIN + dx, MARGIN + dy
        img = canvas[oy : oy + h, ox : ox + w].astype(np.float32)
        gain = 1.0 + look.drift_amp * math.sin(2 * math.pi * f / (fps * look.drift_period_s) + phase)
        img *= gain
        img += rng.standard_normal(img.shape, dtype=np.float32) * look.noise_sigma
        out = np.clip(img, 0, 255).astype(np.uint8)
        if look.blur:
            out = np.asarray(cv2.GaussianBlur(out, (look.blur, look.blur), 0), dtype=np.uint8)
        frames.append(out)
        objects = []
        for k, (_, i, shape) in enumerate(drawn, start=1):
            actor = script.actors[i]
            x1, y1, x2, y2 = shape.bounds()
            full = (x2 - x1) * (y2 - y1)
            bx1, by1 = max(0.0, x1 - ox), max(0.0, y1 - oy)
            bx2, by2 = min(float(w), x2 - ox), min(float(h), y2 - oy)
            if bx2 - bx1 < 3 or by2 - by1 < 3 or (bx2 - bx1) * (by2 - by1) < MIN_INSIDE * full:
                continue
            alone = _pixel_count(shape)
            vis = float(visible[k]) / max(1, alone)
            if vis < MIN_VISIBLE:
                continue
            objects.append(
                {
                    "track_id": actor.track_id,
                    "class": actor.cls,
                    "xyxy": [round(bx1, 1), round(by1, 1), round(bx2, 1), round(by2, 1)],
                    "visibility": round(min(1.0, vis), 2),
                }
            )
        gt_frames.append({"frame": f, "scene": scene, "objects": objects})
        if on_frame is not None:
            on_frame(f)
    gt = {
        "format": GT_FORMAT,
        "seed": seed,
        "fps": fps,
        "width": w,
        "height": h,
        "num_frames": script.num_frames,
        "scene": scene,
        "night": night,
        "shaky": look.shaky,
        "classes": list(CLASSES),
        "activities": [
            {
                "label": a.label,
                "start_frame": a.start_frame,
                "end_frame": min(a.end_frame, script.num_frames - 1),
                "track_ids": list(a.track_ids),
            }
            for a in sorted(script.activities, key=lambda a: a.start_frame)
            if a.start_frame < script.num_frames
        ],
        "frames": gt_frames,
    }
    return frames, gt


def _pixel_count(shape: Shape) -> int:
    """Pixels the shape covers when drawn alone."""
    x1, y1, x2, y2 = (math.floor(v) for v in shape.bounds())
    local = np.zeros((y2 - y1 + 2, x2 - x1 + 2), np.uint8)
    moved = Shape(
        polys=[(pts - np.array([x1, y1], np.int32), c) for pts, c in shape.polys],
        lines=[((a[0] - x1, a[1] - y1), (b[0] - x1, b[1] - y1), t, c) for a, b, t, c in shape.lines],
        discs=[((p[0] - x1, p[1] - y1), r, c) for p, r, c in shape.discs],
    )
    moved.draw(local, (1, 1, 1))
    return int(local.sum())


# -- files -----------------------------------------------------------------------------------------


def write_mp4(path: Path, frames: list[Image], fps: int, crf: int = 23) -> Path:
    """Encode BGR frames as H.264 (yuv420p) MP4 with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    # faststart: the index goes first, so the file also streams over HTTP without range requests.
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "g": str(fps)}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gt_bytes(gt: dict[str, Any]) -> bytes:
    """The canonical serialisation: same ground truth, same bytes."""
    return json.dumps(gt, sort_keys=True, separators=(",", ":")).encode()


def video_plan(seed: int, index: int) -> tuple[int, str, bool]:
    """(video seed, scene, night) of video ``index`` of a set: scenes and day/night alternate."""
    video_seed = int(np.random.default_rng([seed, index]).integers(0, 2**31 - 1))
    return video_seed, SCENES[index % len(SCENES)], (index // len(SCENES)) % 2 == 1


def write_video(
    out_dir: Path,
    name: str,
    seed: int,
    scene: str,
    night: bool,
    seconds: float,
    fps: int,
    size_wh: tuple[int, int] = (640, 360),
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Render, encode and write ``name.mp4`` + ``name.json``; returns the ground truth."""
    frames, gt = render_video(seed, scene, night, seconds, fps, size_wh, on_frame=on_frame)
    crf = int(np.random.default_rng([seed, 2]).integers(22, 31))
    write_mp4(out_dir / f"{name}.mp4", frames, fps, crf=crf)
    gt = {"video": f"{name}.mp4", **gt}
    (out_dir / f"{name}.json").write_bytes(gt_bytes(gt))
    return gt


def synth_set(
    out_dir: Path,
    videos: int,
    seed: int,
    seconds: float = 30.0,
    fps: int = 10,
    size_wh: tuple[int, int] = (640, 360),
    on_video: Callable[[int, dict[str, Any]], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``videos`` labelled videos and ``index.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for i in range(videos):
        vseed, scene, night = video_plan(seed, i)
        gt = write_video(out_dir, f"v{i:04d}", vseed, scene, night, seconds, fps, size_wh, on_frame)
        index.append(
            {
                "video": gt["video"],
                "ground_truth": f"v{i:04d}.json",
                "scene": scene,
                "night": night,
                "seed": vseed,
                "activities": [a["label"] for a in gt["activities"]],
            }
        )
        if on_video is not None:
            on_video(i, gt)
    (out_dir / "index.json").write_text(
        json.dumps({"format": GT_FORMAT, "seed": seed, "fps": fps, "seconds": seconds, "videos": index}, indent=1)
    )
    return index


def load_set(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(video path, ground truth) of every video in a ``vigil synth`` folder."""
    index_path = data_dir / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{data_dir}: no index.json (make one with `vigil synth --out {data_dir}`)")
    index = json.loads(index_path.read_text())
    return [(data_dir / v["video"], json.loads((data_dir / v["ground_truth"]).read_text())) for v in index["videos"]]


def ensure_video(path: Path, seed: int, scene: str, seconds: float = 20.0, fps: int = 10, night: bool = False) -> Path:
    """Render the video once (ground truth next to it as ``.json``); later calls reuse the file."""
    if not path.is_file() or path.stat().st_size == 0:
        frames, gt = render_video(seed, scene, night, seconds, fps)
        tmp = path.with_suffix(".tmp.mp4")
        write_mp4(tmp, frames, fps)
        tmp.replace(path)
        path.with_suffix(".json").write_bytes(gt_bytes({"video": path.name, **gt}))
    return path


# -- posture crops (the crop classifier's training data) ----------------------------------------

POSTURES = ("upright", "down")
_UPRIGHT_POSES = ("walk", "run", "stand")


def _rand_color(rng: np.random.Generator) -> tuple[int, int, int]:
    b, g, r = (int(c) for c in rng.integers(25, 235, 3))
    return b, g, r


def _posed_person(rng: np.random.Generator, x: float, y: float, scale: float, pose: str, t: float) -> Shape:
    color = _rand_color(rng)
    keys = [Key(0, x, y, pose), Key(10, x + float(rng.choice([-1, 1])), y, pose)]
    actor = Actor(0, "person", color, float(rng.uniform(66, 86)), float(rng.uniform(18, 26)), keys)
    actor.fall_dir = int(rng.choice([-1, 1]))
    return person_shape(actor, x, y, pose, t, float(rng.uniform(0, 200)), scale, 0)


def posture_examples(
    n: int, seed: int, size_wh: tuple[int, int] = (640, 360)
) -> Iterator[tuple[Image, tuple[float, float, float, float], int]]:
    """``n`` labelled person images for the crop classifier, one at a time: (frame, person box xyxy,
    label index in ``POSTURES``). Each is a fresh person (colour, size, pose, fall direction) on a scene
    background, sometimes beside another person, with the videos' noise, blur and lighting range.
    ``down``: lying, or past the middle of a fall or before the middle of getting up."""
    rng = np.random.default_rng([seed, 7])
    w, h = size_wh
    backgrounds = [
        background(str(scene), (w, h), bool(night), seed=int(rng.integers(1 << 30)))
        for scene in SCENES
        for night in (False, True)
        for _ in range(3)
    ]
    for _ in range(n):
        label = int(rng.random() < 0.5)
        b = int(rng.integers(len(backgrounds)))
        canvas = backgrounds[b].copy()
        night = b % 6 >= 3
        x, y = float(rng.uniform(0.0, 1.0) * w), float(rng.uniform(0.55, 0.97) * h)  # at the edges: half cut off
        s = perspective(y, h) * float(rng.uniform(0.8, 1.2))

        if label:
            pose = str(rng.choice(["lie", "lie", "fall", "rise"]))
            t = {"lie": 0.0, "fall": float(rng.uniform(0.6, 1.0)), "rise": float(rng.uniform(0.0, 0.4))}[pose]
        else:
            pose, t = str(rng.choice(_UPRIGHT_POSES)), 0.0
        target = _posed_person(rng, x, y, s, pose, t)
        # What stands around people in the videos: vehicles behind, neighbours, carried bags.
        behind: list[Shape] = []
        if rng.random() < 0.35:
            car = Actor(0, "vehicle", _rand_color(rng), float(rng.uniform(46, 60)), float(rng.uniform(110, 160)), [])
            car.keys = [Key(0, x, y, "drive"), Key(10, x + float(rng.choice([-1, 1])), y, "drive")]
            cy = y - float(rng.uniform(0.05, 0.2)) * h
            behind.append(vehicle_shape(car, x + float(rng.uniform(-60, 60)), cy, s * 0.9, 0, night))
        around = [target]
        for _ in range(int(rng.choice([0, 0, 0, 1, 1, 2, 3]))):
            nx = x + float(rng.uniform(-1.5, 1.5)) * 30 * s
            around.append(_posed_person(rng, nx, y + float(rng.uniform(-8, 8)), s, str(rng.choice(_UPRIGHT_POSES)), 0))
        if rng.random() < 0.3 and not label:  # a bag held at the hand
            bag = Actor(0, "bag", _rand_color(rng), float(rng.uniform(22, 30)), float(rng.uniform(24, 34)), [])
            side = float(rng.choice([-1, 1]))
            around.append(bag_shape(bag, x + side * 0.45 * 22 * s, y - 0.33 * 76 * s, s))
        for shape in behind + [around[i] for i in rng.permutation(len(around))]:
            shape.draw(canvas)
        img = canvas.astype(np.float32) * float(rng.uniform(0.85, 1.15))
        noise = float(rng.uniform(5, 9) if night else rng.uniform(2, 5))
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise
        out = np.clip(img, 0, 255).astype(np.uint8)
        blur = int(rng.choice([0, 0, 3, 5]))
        if blur:
            out = np.asarray(cv2.GaussianBlur(out, (blur, blur), 0), dtype=np.uint8)
        ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
        if ok:  # the videos' H.264 blocks, roughly
            out = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)
        x1, y1, x2, y2 = target.bounds()
        yield out, (max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)), label
