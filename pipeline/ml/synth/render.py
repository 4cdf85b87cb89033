"""Rendering a scripted video into frames and its exact ground truth.

Rendering is OpenCV on a canvas a little larger than the frame (so a shaky camera is a moving
crop), then lighting drift, sensor noise and optional blur; ``dataset.write_mp4`` adds H.264
compression when the video is written.

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

The ``rules`` scenario (``pipeline.ml.synth.crossings``) adds ``"scenario": "rules"``, the static
occluders (``"occluders": [[x1, y1, x2, y2]]``, pixels; they hide what stands behind them) and, on
each object, ``"speed_px_s"``: the speed of its foot point in the script, frame pixels per second.
Its camera is never shaky.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from pipeline.ml.synth.activities import make_script
from pipeline.ml.synth.actors import CLASSES, Actor, actor_shape
from pipeline.ml.synth.canvas import MARGIN, Image, Shape
from pipeline.ml.synth.crossings import SCENARIOS, add_rules_actors
from pipeline.ml.synth.scenes import SCENES, background

GT_FORMAT = "vigil-synth/1"
MIN_INSIDE = 0.35  # minimum fraction of a box inside the frame for it to be ground truth
MIN_VISIBLE = 0.25  # minimum fraction of an object's pixels not hidden by nearer objects


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
    scenario: str = "default",
) -> tuple[list[Image], dict[str, Any]]:
    """Render a video and its ground truth (see the module docstring for the format)."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    rng = np.random.default_rng([seed, 1])
    w, h = size_wh
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    actors = add_rules_actors if scenario == "rules" else None
    script = make_script(seed, scene, night, seconds, fps, size_wh, order, scenario=scenario, scenario_actors=actors)
    look = make_look(rng, night)
    rules = scenario == "rules"
    if rules:  # speeds are measured in frame pixels: a steady camera
        look = replace(look, shaky=False)
    occluders = sorted(((o.base_y, o.shape(night)) for o in script.occluders), key=lambda t: t[0])
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
        ahead = 0  # occluders are drawn in depth order with the actors, and hide what is behind them
        for k, (depth, _, shape) in enumerate(drawn, start=1):
            while ahead < len(occluders) and occluders[ahead][0] <= depth:
                occluders[ahead][1].draw(canvas)
                occluders[ahead][1].draw(ids, (0, 0, 0))
                ahead += 1
            shape.draw(canvas)
            shape.draw(ids, (k, k, k))
        for _, occluder in occluders[ahead:]:
            occluder.draw(canvas)
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
            obj: dict[str, Any] = {
                "track_id": actor.track_id,
                "class": actor.cls,
                "xyxy": [round(bx1, 1), round(by1, 1), round(bx2, 1), round(by2, 1)],
                "visibility": round(min(1.0, vis), 2),
            }
            if rules:
                obj["speed_px_s"] = round(world_speed(actor, f, fps), 2)
            objects.append(obj)
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
    if rules:
        gt["scenario"] = scenario
        gt["occluders"] = [
            [round(o.x1, 1), 0.0, round(o.x2, 1), round(o.base_y, 1)]
            for o in sorted(script.occluders, key=lambda o: o.base_y)
        ]
    return frames, gt


def world_speed(actor: Actor, f: int, fps: int) -> float:
    """The speed of the actor's foot point at frame ``f`` in the script (frame pixels per second):
    its displacement from the frame before to the frame after (one side at either end)."""
    here = actor.state(f)
    before, after = actor.state(f - 1), actor.state(f + 1)
    if here is None:
        return 0.0
    a, b = before or here, after or here
    steps = (before is not None) + (after is not None)
    return math.hypot(b[0] - a[0], b[1] - a[1]) * fps / steps if steps else 0.0


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
