import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.messages import Detections, Event


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


def make_event(**kw: object) -> Event:
    base: dict[str, object] = {
        "incident_id": "i1",
        "phase": "start",
        "camera_id": "c",
        "kind": "object",
        "label": "person",
        "confidence": 0.9,
        "peak_confidence": 0.9,
        "started_at": "2026-01-01T00:00:00.000Z",
        "duration_s": 0.0,
        "frame_id": 3,
        "captured_at": 1.0,
    }
    base.update(kw)
    return Event.model_validate(base)


def test_event_json_has_the_documented_fields() -> None:
    ev = make_event(bbox_xyxy=(1, 2, 3, 4), track_id=5)
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
    assert doc["schema_version"] == 4 and doc["phase"] == "start"
    assert make_event().event_id != ev.event_id


def test_shipped_json_schema_is_current() -> None:
    from pipeline.cli.app import event_schema_json

    shipped = (Path(__file__).resolve().parents[2] / "docs" / "event.schema.json").read_text()
    assert shipped == event_schema_json(), "run: vigil events schema -o docs/event.schema.json"


def test_event_rejects_bad_kind_and_bad_confidence() -> None:
    with pytest.raises(ValueError):
        make_event(kind="Not a kind!")
    with pytest.raises(ValueError):
        make_event(confidence=1.5)
    with pytest.raises(ValueError):
        make_event(phase="")


def test_readers_pass_through_what_a_newer_vigil_adds() -> None:
    """A reader keeps fields it does not know aside (document() has them) and passes kinds and phases
    it does not know through."""
    doc = json.loads(make_event().model_dump_json())
    read = Event.read(json.dumps({**doc, "heading_deg": 270}))
    assert read is not None and read.model_dump() == Event.model_validate(doc).model_dump()
    assert read.document()["heading_deg"] == 270
    newer = Event.read(json.dumps({**doc, "kind": "wrong_way", "phase": "pulse"}))
    assert newer is not None and (newer.kind, newer.phase) == ("wrong_way", "pulse")
    assert Event.read(b"not json") is None
