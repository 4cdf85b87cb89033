"""Incident lifecycles: start -> update -> end with hysteresis, driven by capture times."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.config import EventsConfig
from pipeline.core.messages import ClipLabel, Detections, Event, LabelScore
from pipeline.events.rules import EventEngine

NAMES = ("person", "car", "bag")


def dets(rows: list[tuple[int, int, float]]) -> Detections:
    """rows: (track_id, class_id, confidence)."""
    n = len(rows)
    return Detections(
        xyxy=np.tile(np.array([[10, 20, 30, 60]], np.float32), (n, 1)),
        confidence=np.array([r[2] for r in rows], np.float32),
        class_id=np.array([r[1] for r in rows], np.int64),
        tracker_id=np.array([r[0] for r in rows], np.int64),
        class_names=NAMES,
    )


def run_objects(engine: EventEngine, frames: list[list[tuple[int, int, float]]], fps: float = 10) -> list[Event]:
    out: list[Event] = []
    for i, rows in enumerate(frames):
        out += engine.on_detections(i, 1000.0 + i / fps, dets(rows))
    return out


def test_object_lifecycle_start_update_end() -> None:
    cfg = EventsConfig(
        object_min_confidence=0.5, object_min_duration_s=0.5, object_cooldown_s=1.0, update_interval_s=2.0
    )
    engine = EventEngine("cam", cfg)
    confs = [0.6, 0.7, 0.9, 0.8] + [0.7] * 46  # 5 s of a person, peak 0.9
    events = run_objects(engine, [[(7, 0, c)] for c in confs] + [[]] * 20)
    assert [e.phase for e in events] == ["start", "update", "update", "end"]
    start, end = events[0], events[-1]
    assert start.frame_id == 5  # 0.5 s after the first sighting at 10 fps
    assert start.track_id == 7 and start.track_ids == (7,) and start.label == "person"
    assert len({e.incident_id for e in events}) == 1
    assert len({e.event_id for e in events}) == 4
    assert end.duration_s == pytest.approx(4.9)
    assert end.peak_confidence == pytest.approx(0.9)
    assert end.ts == "1970-01-01T00:16:44.900Z"  # the last sighting, not the moment the cooldown expired


def test_a_crop_label_change_that_holds_gives_an_update_at_once() -> None:
    cfg = EventsConfig(object_min_duration_s=0.2, update_interval_s=60, crop_min_frames=3)
    engine = EventEngine("cam", cfg)
    # A person upright for 1 s, one frame misread as down, then down for good from frame 15.
    labels = ["upright"] * 10 + ["down"] + ["upright"] * 4 + ["down"] * 10
    events: list[Event] = []
    for i, label in enumerate(labels):
        crops = {7: LabelScore(label, 0.9)}
        events += engine.on_detections(i, 1000.0 + i / 10, dets([(7, 0, 0.8)]), crops)
    assert [(e.phase, e.crop_label, e.frame_id) for e in events] == [("start", "upright", 2), ("update", "down", 17)]
    assert events[1].crop_confidence == pytest.approx(0.9)


def test_short_lived_or_weak_tracks_raise_nothing() -> None:
    engine = EventEngine("cam", EventsConfig(object_min_confidence=0.5, object_min_duration_s=1.0))
    blip = [[(1, 0, 0.9)]] * 3 + [[]] * 40  # 0.3 s: below min duration
    weak = [[(2, 0, 0.3)]] * 40
    assert run_objects(engine, blip) == []
    assert run_objects(engine, weak) == []


def test_object_classes_filter_and_untracked_boxes() -> None:
    engine = EventEngine("cam", EventsConfig(object_classes=("person",), object_min_duration_s=0))
    events = run_objects(engine, [[(1, 1, 0.9), (-1, 0, 0.9), (3, 0, 0.9)]])
    assert [(e.phase, e.track_id) for e in events] == [("start", 3)]


def clip(label: str, conf: float, end: int) -> ClipLabel:
    return ClipLabel("cam", label, conf, start_frame_id=end - 15, end_frame_id=end, head="lstm")


def run_clips(engine: EventEngine, labels: list[str], conf: float = 0.9) -> list[Event]:
    out: list[Event] = []
    for i, label in enumerate(labels):
        out += engine.on_clip(clip(label, conf, 16 + 8 * i), 1000.0 + 1.6 * i, track_ids=(i % 3,))
    return out


def test_flickering_clip_label_gives_one_start_and_one_end() -> None:
    cfg = EventsConfig(clip_min_windows=2, clip_end_windows=3, update_interval_s=1000)
    engine = EventEngine("cam", cfg)
    labels = [
        "normal",
        "fall",
        "normal",
        "fall",
        "fall",
        "normal",
        "fall",
        "normal",
        "fall",
        "fall",
        "normal",
        "normal",
        "normal",
        "normal",
    ]
    events = run_clips(engine, labels)
    assert [(e.phase, e.label) for e in events] == [("start", "fall"), ("end", "fall")]
    start, end = events
    assert start.frame_id == 16 + 8 * 3  # the second window with "fall"
    assert start.start_frame_id == 16 + 8 - 15  # where the first "fall" window began
    assert end.duration_s == pytest.approx(1.6 * (9 - 1))
    assert end.track_ids == (0, 1, 2)


def test_single_spurious_clip_label_is_forgotten() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_windows=2, clip_end_windows=2))
    assert run_clips(engine, ["normal", "run", "normal", "normal", "normal"]) == []


def test_unconfident_clip_labels_do_not_count() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_confidence=0.95))
    assert run_clips(engine, ["fall"] * 10, conf=0.9) == []


def test_close_ends_started_incidents() -> None:
    engine = EventEngine("cam", EventsConfig(object_min_duration_s=0, clip_min_windows=1))
    started = run_objects(engine, [[(4, 2, 0.9)]]) + run_clips(engine, ["loiter"])
    assert [e.phase for e in started] == ["start", "start"]
    ended = engine.close()
    assert sorted((e.kind, e.phase) for e in ended) == [("clip", "end"), ("object", "end")]
    assert {e.incident_id for e in ended} == {e.incident_id for e in started}


def test_the_rules_count_the_given_clock_and_stamp_capture_times() -> None:
    """A file read 4x faster than real time: the rules run on the video's clock (10 fps), the
    events carry the wall-clock capture times (40 frames per wall second)."""
    cfg = EventsConfig(object_min_duration_s=0.5, object_cooldown_s=1.0, update_interval_s=60)
    engine = EventEngine("cam", cfg)
    events: list[Event] = []
    frames = [[(7, 0, 0.8)]] * 30 + [[]] * 15
    for i, rows in enumerate(frames):
        events += engine.on_detections(i, 2000.0 + i / 40, dets(rows), clock=1000.0 + i / 10)
    start, end = events
    assert (start.phase, start.frame_id) == ("start", 5)  # 0.5 s of video, not of wall time
    assert start.ts == "1970-01-01T00:33:20.125Z" and start.captured_at == pytest.approx(2000.125)
    assert start.started_at == "1970-01-01T00:33:20.000Z"
    assert end.phase == "end" and end.duration_s == pytest.approx(2.9)  # video seconds
    assert end.ts == "1970-01-01T00:33:20.725Z"  # the last sighting's capture time
