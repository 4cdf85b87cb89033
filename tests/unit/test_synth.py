"""The labelled synthetic world: deterministic, boxes that match the drawing, scripted activities."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from pipeline.ml.synth.activities import ACTIVITIES, make_script
from pipeline.ml.synth.actors import CLASSES, actor_shape
from pipeline.ml.synth.canvas import MARGIN
from pipeline.ml.synth.dataset import gt_bytes, load_set, synth_set
from pipeline.ml.synth.posture import posture_examples
from pipeline.ml.synth.render import render_video
from pipeline.ml.synth.scenes import SCENES


def test_same_seed_same_ground_truth_bytes_and_frames() -> None:
    frames_a, gt_a = render_video(7, "street", night=True, seconds=4, fps=10)
    frames_b, gt_b = render_video(7, "street", night=True, seconds=4, fps=10)
    assert gt_bytes(gt_a) == gt_bytes(gt_b)
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
    _, gt_c = render_video(8, "street", night=True, seconds=4, fps=10)
    assert gt_bytes(gt_c) != gt_bytes(gt_a)


@pytest.mark.parametrize("scene", SCENES)
def test_boxes_are_the_extent_of_the_drawn_pixels(scene: str) -> None:
    """Each object's box (before the frame crop) is exactly the bounding box of the pixels it draws."""
    w, h = 640, 360
    script = make_script(3, scene, night=False, seconds=20, fps=10, size_wh=(w, h))
    checked = 0
    for f in range(0, script.num_frames, 7):
        for actor in script.actors:
            drawn = actor_shape(actor, f, h, night=False)
            if drawn is None:
                continue
            shape, _ = drawn
            canvas = np.zeros((h + 2 * MARGIN + 400, w + 2 * MARGIN + 400), np.uint8)
            shifted = _shift(shape, 200)
            shifted.draw(canvas, (255, 255, 255))
            ys, xs = np.nonzero(canvas)
            x1, y1, x2, y2 = shifted.bounds()
            assert abs(xs.min() - x1) <= 1.5 and abs(ys.min() - y1) <= 1.5, (actor.cls, f)
            assert abs(xs.max() + 1 - x2) <= 1.5 and abs(ys.max() + 1 - y2) <= 1.5, (actor.cls, f)
            checked += 1
    assert checked > 50


def _shift(shape, d: int):  # type: ignore[no-untyped-def]
    from pipeline.ml.synth.canvas import Shape

    return Shape(
        polys=[(pts + d, c) for pts, c in shape.polys],
        lines=[((a[0] + d, a[1] + d), (b[0] + d, b[1] + d), t, c) for a, b, t, c in shape.lines],
        discs=[((p[0] + d, p[1] + d), r, c) for p, r, c in shape.discs],
    )


def test_objects_in_ground_truth_differ_from_the_background() -> None:
    """Where the ground truth puts a clearly visible object, the frame is not the empty scene."""
    from pipeline.ml.synth.scenes import background

    seed = 11
    while (video := render_video(seed, "parking", seconds=6, fps=10))[1]["shaky"]:
        seed += 1  # a still camera, so the frame and the empty scene line up
    frames, gt = video
    bg = background("parking", (640 + 2 * MARGIN, 360 + 2 * MARGIN), night=False, seed=seed)
    diffs = []
    for f in range(0, len(frames), 5):
        for obj in gt["frames"][f]["objects"]:
            if obj["visibility"] < 0.9:
                continue
            x1, y1, x2, y2 = (round(v) for v in obj["xyxy"])
            crop = frames[f][y1:y2, x1:x2].astype(np.float32)
            empty = bg[MARGIN + y1 : MARGIN + y2, MARGIN + x1 : MARGIN + x2].astype(np.float32)
            diffs.append(float(np.abs(crop - empty).mean()))
    assert len(diffs) > 10
    assert np.median(diffs) > 15  # noise and drift alone give a few grey levels


def test_scripts_cover_every_activity_in_separate_segments() -> None:
    seen: set[str] = set()
    for seed in range(6):
        script = make_script(seed, SCENES[seed % 3], night=False, seconds=30, fps=10, size_wh=(640, 360))
        acts = sorted(script.activities, key=lambda a: a.start_frame)
        for a, b in pairwise(acts):
            assert b.start_frame - a.end_frame >= 30  # at least 3 s of normal between activities
        seen |= {a.label for a in acts}
    assert seen == set(ACTIVITIES[1:])


def test_activity_tracks_are_in_the_ground_truth_during_their_segment() -> None:
    for seed in range(2):
        _, gt = render_video(seed, SCENES[seed % 3], seconds=30, fps=10)
        prev_end = -1
        for act in gt["activities"]:
            assert act["label"] in ACTIVITIES[1:]
            assert prev_end < act["start_frame"] <= act["end_frame"] < gt["num_frames"]
            prev_end = act["end_frame"]
            mid = gt["frames"][(act["start_frame"] + act["end_frame"]) // 2]["objects"]
            present = {o["track_id"] for o in mid}
            assert present & set(act["track_ids"]), act
        for frame in gt["frames"]:
            for obj in frame["objects"]:
                x1, y1, x2, y2 = obj["xyxy"]
                assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360 and obj["class"] in CLASSES


def test_fall_turns_a_person_box_from_tall_to_wide() -> None:
    seed = next(
        s
        for s in range(50)
        if any(a.label == "fall" for a in make_script(s, "corridor", False, 30, 10, (640, 360)).activities)
    )
    _, gt = render_video(seed, "corridor", seconds=30, fps=10)
    falls = [a for a in gt["activities"] if a["label"] == "fall"]
    act = falls[0]
    tid = act["track_ids"][0]

    def aspect(f: int) -> float:
        box = next(o["xyxy"] for o in gt["frames"][f]["objects"] if o["track_id"] == tid)
        return (box[3] - box[1]) / (box[2] - box[0])

    assert aspect(act["start_frame"] - 2) > 1.5
    assert aspect(act["start_frame"] + 10) < 1.0


def test_synth_set_writes_videos_ground_truth_and_index(tmp_path: Path) -> None:
    index = synth_set(tmp_path, videos=2, seed=5, seconds=3, fps=5)
    assert [v["video"] for v in index] == ["v0000.mp4", "v0001.mp4"]
    loaded = load_set(tmp_path)
    import cv2

    for video, gt in loaded:
        cap = cv2.VideoCapture(str(video))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == gt["num_frames"] == 15
        cap.release()
        assert gt["format"] == "vigil-synth/1" and len(gt["frames"]) == 15
    assert json.loads((tmp_path / "index.json").read_text())["seed"] == 5


def test_posture_examples_are_seeded_balanced_and_boxed() -> None:
    a = list(posture_examples(60, seed=5))
    b = list(posture_examples(60, seed=5))
    assert all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True))
    labels = [label for _img, _box, label in a]
    assert 15 <= labels.count(1) <= 45  # both postures, about half each
    for img, (x1, y1, x2, y2), label in a:
        assert 0 <= x1 < x2 <= img.shape[1] and 0 <= y1 < y2 <= img.shape[0]
        wide = (x2 - x1) > (y2 - y1)
        if not label:
            assert not wide or x1 == 0 or x2 == img.shape[1]  # upright people are taller than wide (unless cut off)
