"""The synthetic world's objects (people, vehicles, bags): scripted paths (``Key``, ``Actor``) and
how each one is drawn at a frame, posed and scaled by perspective."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from pipeline.ml.synth.canvas import MARGIN, Shape, int_point, rotate_points

CLASSES = ("person", "vehicle", "bag")


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


@dataclass(frozen=True)
class Occluder:
    """A static object in front of whatever stands behind it (a pillar): frame pixels ``x1..x2``
    wide, from its foot ``base_y`` up past the top of the frame. Actors whose foot is above
    ``base_y`` (farther away) pass behind it; nearer ones pass in front."""

    x1: float
    x2: float
    base_y: float
    color: tuple[int, int, int]

    def shape(self, night: bool) -> Shape:
        """Its drawing (canvas coordinates): the shaft, a shaded edge and a plinth."""
        dim = (0.42, 0.32, 0.3) if night else (1.0, 1.0, 1.0)

        def lit(shade: float) -> tuple[int, int, int]:
            c = self.color
            return int(c[0] * shade * dim[0]), int(c[1] * shade * dim[1]), int(c[2] * shade * dim[2])

        x1, x2, base = self.x1 + MARGIN, self.x2 + MARGIN, self.base_y + MARGIN
        edge = x1 + 0.72 * (x2 - x1)

        def rect(a: float, b: float, top: float, bottom: float) -> npt.NDArray[np.int32]:
            return np.array([int_point(q) for q in ((a, top), (b, top), (b, bottom), (a, bottom))], np.int32)

        shape = Shape()
        shape.polys.append((rect(x1, x2, 0, base), lit(1.0)))
        shape.polys.append((rect(edge, x2, 0, base), lit(0.7)))
        shape.polys.append((rect(x1 - 3, x2 + 3, base - 10, base), lit(0.8)))
        return shape


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
    p = rotate_points(pts, angle, (0.0, 0.0))
    p = [(x + px, y + py) for px, py in p]
    skin = (150, 175, 215)
    legs = tuple(int(c * 0.55) for c in actor.color)
    leg_t, arm_t = max(2, round(w / 3)), max(2, round(w / 5))
    shape = Shape()
    shape.lines += [(p[5], p[6], leg_t, legs), (p[7], p[8], leg_t, legs)]  # type: ignore[list-item]
    shape.lines += [(p[9], p[10], arm_t, actor.color), (p[11], p[12], arm_t, actor.color)]
    shape.polys.append((np.array([int_point(q) for q in p[1:5]], np.int32), actor.color))
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
        (
            np.array([int_point(q) for q in ((x1, body_top), (x2, body_top), (x2, body_bot), (x1, body_bot))]),
            actor.color,
        )
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
    shape.polys.append((np.array([int_point(q) for q in cab], np.int32), shade))
    win = [(px * 0.8 + x * 0.2, py * 0.75 + (body_top * 0.25)) for px, py in cab]
    shape.polys.append(
        (np.array([int_point(q) for q in win], np.int32), (200, 170, 120) if not night else (60, 60, 50))
    )
    for wx in (x1 + 0.2 * length, x2 - 0.2 * length):
        shape.discs.append(((wx, y - wheel_r), wheel_r, (25, 25, 25)))
    lamp = (x2 - 3, body_top + 0.3 * h) if d > 0 else (x1 + 3, body_top + 0.3 * h)
    shape.discs.append((lamp, max(2, round(0.08 * h)), (120, 235, 255) if night else (190, 210, 220)))
    return shape


def bag_shape(actor: Actor, x: float, y: float, s: float) -> Shape:
    w, h = actor.width * s, actor.height * s
    shape = Shape()
    body = [(x - w / 2, y - 0.75 * h), (x + w / 2, y - 0.75 * h), (x + w / 2, y), (x - w / 2, y)]
    shape.polys.append((np.array([int_point(q) for q in body], np.int32), actor.color))
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
    shape.polys.append((np.array([int_point(q) for q in band], np.int32), (215, 225, 230)))
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
