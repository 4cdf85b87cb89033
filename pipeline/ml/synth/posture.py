"""Posture examples, the crop classifier's training data: single posed people (upright or down)
on scene backgrounds, with the videos' clutter, noise, blur and compression."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from pipeline.ml.synth.actors import Actor, Key, bag_shape, person_shape, perspective, vehicle_shape
from pipeline.ml.synth.canvas import Image, Shape
from pipeline.ml.synth.scenes import SCENES, background

POSTURES = ("upright", "down")
_UPRIGHT_POSES = ("walk", "run", "stand")
FALL_SETTLE_S = 0.3  # the first moments of a fall still look upright: neither posture


def true_posture(gt: dict[str, Any], frame: int, track_id: int) -> str | None:
    """A person's posture in a ``vigil synth`` video's ground truth: ``down`` inside a fall segment
    of ``track_id`` once it has settled, ``upright`` otherwise; None in a fall's first
    FALL_SETTLE_S."""
    settle = round(FALL_SETTLE_S * float(gt["fps"]))
    for a in gt["activities"]:
        if a["label"] == "fall" and track_id in a["track_ids"] and a["start_frame"] <= frame <= a["end_frame"]:
            return "down" if frame >= a["start_frame"] + settle else None
    return "upright"


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
