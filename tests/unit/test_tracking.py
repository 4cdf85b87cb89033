import numpy as np

from pipeline.messages import Detections
from workers.tracking import Tracker


def moving(frame: int) -> Detections:
    """A person walking right and a parked car."""
    return Detections(
        np.array([[10 + 6 * frame, 50, 40 + 6 * frame, 130], [300, 200, 400, 250]], np.float32),
        np.array([0.9, 0.8], np.float32),
        np.array([0, 2]),
        np.full(2, -1),
        ("person", "bicycle", "car"),
    )


def test_track_ids_are_stable_across_frames() -> None:
    tracker = Tracker(frame_rate=10)
    ids = []
    for f in range(10):
        out = tracker.update(moving(f))
        ids.append(dict(zip(out.class_id.tolist(), out.tracker_id.tolist(), strict=True)))
    assert all(i == ids[0] for i in ids)
    assert len(set(ids[0].values())) == 2


def test_empty_frames_do_not_break_tracks() -> None:
    tracker = Tracker(frame_rate=10, lost_track_s=2)
    first = tracker.update(moving(0)).tracker_id.tolist()
    assert len(tracker.update(Detections.empty())) == 0
    again = tracker.update(moving(2)).tracker_id.tolist()
    assert sorted(again) == sorted(first)
