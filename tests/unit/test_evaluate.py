"""Scoring of `vigil eval`: box matching, mAP, event matching at temporal IoU >= 0.5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.core.messages import Event
from pipeline.ml.evaluate import box_iou, event_segments, match_frame, score_detection, score_events, temporal_iou


def test_box_iou_and_greedy_matching() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert box_iou(a, b)[0] == pytest.approx([1.0, 1 / 3, 0.0])
    gt = np.array([[0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10, 0.6, 0], [0, 0, 10, 9, 0.9, 0], [0, 0, 10, 10, 0.9, 1]], float)
    tp = match_frame(pred, gt, np.array([0]))
    # The most confident box of the right class takes the one GT box; the duplicate is a false
    # positive; the wrong class never matches.
    assert tp[:, 0].tolist() == [False, True, False]
    assert tp[1, -1] == False  # noqa: E712  IoU 0.9 fails the 0.95 threshold


def _video(
    acts: list[tuple[str, int, int]], frames: list[list[tuple[str, list[float]]]] | None = None
) -> dict[str, Any]:
    return {
        "num_frames": 200,
        "activities": [{"label": lab, "start_frame": s, "end_frame": e, "track_ids": [1]} for lab, s, e in acts],
        "frames": [
            {"frame": i, "scene": "street", "objects": [{"class": c, "xyxy": box} for c, box in objs]}
            for i, objs in enumerate(frames or [])
        ],
    }


def test_detection_scores_perfect_and_missing_predictions() -> None:
    frames = [[("person", [10.0, 10.0, 30.0, 60.0]), ("bag", [40.0, 40.0, 60.0, 60.0])] for _ in range(5)]
    videos = [(Path("v0.mp4"), _video([], frames))]
    perfect = {"v0": [{"frame_id": i, "boxes": [[10, 10, 30, 60, 0.9, 0], [40, 40, 60, 60, 0.8, 2]]} for i in range(5)]}
    good = score_detection(videos, perfect)
    assert good["map50"] == pytest.approx(1.0, abs=0.01) and good["map50_95"] == pytest.approx(1.0, abs=0.01)
    no_bags = {"v0": [{"frame_id": i, "boxes": [[10, 10, 30, 60, 0.9, 0]]} for i in range(5)]}
    half = score_detection(videos, no_bags)
    assert half["per_class"]["bag"]["map50"] == 0.0 and half["map50"] == pytest.approx(0.5, abs=0.01)


def _clip(incident: str, label: str, start: int, frame: int, phase: str = "start") -> Event:
    return Event(
        incident_id=incident,
        phase=phase,
        camera_id="v0",
        kind="clip",
        label=label,
        confidence=0.9,
        peak_confidence=0.9,
        started_at="2026-01-01T00:00:00Z",
        duration_s=1.0,
        frame_id=frame,
        start_frame_id=start,
        captured_at=0.0,
    )


def test_events_match_at_temporal_iou_half() -> None:
    assert temporal_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    videos = [(Path("v0.mp4"), _video([("fall", 20, 59), ("run", 100, 129), ("crowd", 150, 189)]))]
    events = [
        _clip("a", "fall", 16, 40),
        _clip("a", "fall", 16, 63, "end"),  # [16, 63] vs [20, 59]: tIoU 0.83
        _clip("b", "run", 120, 135),
        _clip("b", "run", 120, 150, "end"),  # [120, 150] vs [100, 129]: 0.24
        _clip("c", "loiter", 150, 190),  # wrong label
    ]
    assert event_segments(events)["v0"] == [("fall", 16, 63), ("run", 120, 150), ("loiter", 150, 190)]
    score = score_events(videos, events)
    assert (score["tp"], score["fp"], score["fn"]) == (1, 2, 2)
    assert score["precision"] == pytest.approx(1 / 3) and score["recall"] == pytest.approx(1 / 3)
    assert score["per_label"]["fall"]["f1"] == 1.0 and score["per_label"]["crowd"]["recall"] == 0.0
    # One prediction cannot count twice.
    twice = score_events([(Path("v0.mp4"), _video([("fall", 20, 59), ("fall", 22, 60)]))], events[:2])
    assert (twice["tp"], twice["fn"]) == (1, 1)
