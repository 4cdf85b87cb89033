import numpy as np

from pipeline.config import EventsConfig
from pipeline.events import EventEngine
from pipeline.messages import ClipLabel, Detections

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


def test_one_object_event_per_track_above_threshold() -> None:
    engine = EventEngine("cam", EventsConfig(object_min_confidence=0.5))
    first = engine.on_detections(1, 100.0, dets([(1, 0, 0.9), (2, 1, 0.3)]))
    assert [(e.track_id, e.label) for e in first] == [(1, "person")]
    assert first[0].bbox_xyxy == (10.0, 20.0, 30.0, 60.0)
    # track 1 again: nothing; track 2 now confident: its first event
    second = engine.on_detections(2, 100.1, dets([(1, 0, 0.95), (2, 1, 0.7)]))
    assert [(e.track_id, e.label, e.frame_id) for e in second] == [(2, "car", 2)]


def test_object_classes_filter_and_untracked_boxes() -> None:
    engine = EventEngine("cam", EventsConfig(object_classes=("person",), object_min_confidence=0.1))
    events = engine.on_detections(1, 0.0, dets([(1, 1, 0.9), (-1, 0, 0.9), (3, 0, 0.9)]))
    assert [e.track_id for e in events] == [3]


def clip(label: str, conf: float) -> ClipLabel:
    return ClipLabel("cam", label, conf, start_frame_id=10, end_frame_id=25, head="lstm")


def test_clip_events_skip_ignored_and_unconfident_labels() -> None:
    engine = EventEngine("cam", EventsConfig(clip_min_confidence=0.6, clip_ignore_labels=("normal",)))
    assert engine.on_clip(clip("normal", 0.99), 0.0) == []
    assert engine.on_clip(clip("fall", 0.4), 0.0) == []
    [ev] = engine.on_clip(clip("fall", 0.8), 0.0)
    assert (ev.kind, ev.label, ev.start_frame_id, ev.frame_id, ev.head) == ("clip", "fall", 10, 25, "lstm")
