import numpy as np
import pytest

from pipeline.core.messages import Detections
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


def crowd(frames: int, seed: int = 7) -> list[Detections]:
    """People walking across each other's paths with jittery boxes, missed detections, low-score
    detections (ByteTrack's second association) and people entering and leaving."""
    rng = np.random.default_rng(seed)
    n = 12
    start = rng.uniform(0, 600, (n, 2))
    velocity = rng.uniform(-6, 6, (n, 2))
    size = rng.uniform(20, 60, n)
    enter, leave = rng.integers(0, frames // 2, n), rng.integers(frames // 2, frames, n)
    out = []
    for f in range(frames):
        rows, conf = [], []
        for i in range(n):
            if not enter[i] <= f < leave[i] or rng.random() < 0.1:  # absent, or missed this frame
                continue
            cx, cy = start[i] + velocity[i] * f + rng.normal(0, 1.5, 2)
            w, h = size[i] * rng.uniform(0.9, 1.1), 2 * size[i] * rng.uniform(0.9, 1.1)
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            conf.append(rng.uniform(0.12, 0.3) if rng.random() < 0.2 else rng.uniform(0.4, 0.95))
        k = len(rows)
        out.append(
            Detections(
                np.array(rows, np.float32).reshape(-1, 4),
                np.array(conf, np.float32),
                np.zeros(k, np.int64),
                np.full(k, -1),
                ("person",),
            )
        )
    return out


@pytest.mark.parametrize(("seed", "lost_track_s"), [(7, 3.0), (11, 0.3), (23, 0.5)])
def test_the_array_tracker_gives_ultralytics_results(seed: int, lost_track_s: float) -> None:
    """Vigil's ByteTrack (every track a row of one array) follows ultralytics' BYTETracker step
    for step: the same ids and boxes frame after frame, through new, lost, removed and re-found
    tracks (short ``lost_track_s``: tracks are removed and their ids retired often)."""
    stock, ours = Tracker(frame_rate=10, lost_track_s=lost_track_s, stock=True), Tracker(10, lost_track_s)
    ids_seen: set[int] = set()
    for f, det in enumerate(crowd(300, seed)):
        a, b = stock.update(det), ours.update(det)
        assert a.tracker_id.tolist() == b.tracker_id.tolist(), f"frame {f}"
        assert np.array_equal(a.xyxy, b.xyxy), f"frame {f}"  # bit for bit: the same float operations
        assert np.array_equal(a.confidence, b.confidence), f"frame {f}"
        ids_seen.update(b.tracker_id.tolist())
    assert len(ids_seen) >= 12  # the sequence exercised new, lost and re-found tracks
