import json

import numpy as np
import pytest

from pipeline.messages import Detections, Event


def test_detections_validate_parallel_arrays() -> None:
    with pytest.raises(ValueError, match="confidence must have shape"):
        Detections(np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros(2, np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"xyxy must have shape \(N, 4\)"):
        Detections(np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.zeros(2, np.int64), np.zeros(2, np.int64))


def test_detection_label_uses_class_names() -> None:
    det = Detections(
        np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.array([1, 7]), np.full(2, -1), ("person", "car")
    )
    assert [det.label(0), det.label(1)] == ["car", "7"]


def test_event_json_has_the_documented_fields() -> None:
    ev = Event(
        camera_id="c",
        kind="object",
        label="person",
        confidence=0.9,
        frame_id=3,
        bbox_xyxy=(1, 2, 3, 4),
        track_id=5,
        captured_at=1.0,
    )
    doc = json.loads(ev.model_dump_json())
    for key in (
        "schema_version",
        "event_id",
        "camera_id",
        "kind",
        "label",
        "confidence",
        "ts",
        "frame_id",
        "bbox_xyxy",
        "track_id",
    ):
        assert key in doc
    assert doc["ts"].endswith("Z")
    other = Event(camera_id="c", kind="clip", label="run", confidence=0.5, frame_id=3, captured_at=1.0)
    assert other.event_id != ev.event_id


def test_event_rejects_unknown_kind_and_bad_confidence() -> None:
    with pytest.raises(ValueError):
        Event(camera_id="c", kind="alarm", label="x", confidence=0.5, frame_id=0, captured_at=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Event(camera_id="c", kind="clip", label="x", confidence=1.5, frame_id=0, captured_at=0)
