"""Snapshots of start events: the JPEG's size bound, the event's own box drawn in red, and where
``events.snapshots.store`` keeps it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.core.config import EventsConfig, SnapshotConfig
from pipeline.core.messages import Detections, Event, FramePacket
from pipeline.events.rules import EventEngine
from pipeline.events.snapshots import attach_snapshots, frame_snapshot, render_snapshot

W, H = 1000, 600  # the decoded frame; 640 wide at the default max_width, 384 high
OWN = (7, (100.0, 120.0, 400.0, 420.0))  # the event's track and its box
OTHER = (8, (600.0, 150.0, 900.0, 450.0))  # another track in the same frame


def frame() -> npt.NDArray[np.uint8]:
    return np.full((H, W, 3), 128, np.uint8)


def tracked() -> Detections:
    return Detections(
        xyxy=np.array([OWN[1], OTHER[1]], np.float32),
        confidence=np.array([0.9, 0.8], np.float32),
        class_id=np.array([0, 0], np.int64),
        tracker_id=np.array([OWN[0], OTHER[0]], np.int64),
        class_names=("person",),
    )


def start_event() -> Event:
    """The start event the rules raise for the frame's tracks (track 7's is the first)."""
    engine = EventEngine("lobby", EventsConfig(object_min_duration_s=0))
    events = engine.on_detections(1, 1000.0, tracked())
    assert [(e.phase, e.track_id) for e in events] == [("start", OWN[0]), ("start", OTHER[0])]
    return events[0]


def decode(jpeg: bytes) -> npt.NDArray[np.uint8]:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a JPEG"
    return np.asarray(img, np.uint8)


def red(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels drawn in the highlight colour (BGR 0, 0, 255), allowing for JPEG noise."""
    b, g, r = (img[..., i].astype(int) for i in range(3))
    return (r > 180) & (g < 90) & (b < 90)


def edge_pixels(img: npt.NDArray[np.uint8], box: tuple[float, ...], scale: float) -> list[npt.NDArray[np.uint8]]:
    """The pixels along the middle half of each side of ``box`` (in frame pixels) in ``img``."""
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    qx, qy = (x2 - x1) // 4, (y2 - y1) // 4
    return [
        img[y1, x1 + qx : x2 - qx],
        img[y2, x1 + qx : x2 - qx],
        img[y1 + qy : y2 - qy, x1],
        img[y1 + qy : y2 - qy, x2],
    ]


def test_snapshot_is_scaled_to_max_width_keeping_the_aspect() -> None:
    img = decode(render_snapshot(frame(), tracked(), SnapshotConfig(max_width=500)))
    assert img.shape[:2] == (300, 500)


def test_default_max_width_is_640() -> None:
    img = decode(render_snapshot(frame(), tracked(), SnapshotConfig()))
    assert img.shape[:2] == (384, 640)


def test_a_frame_narrower_than_max_width_keeps_its_size() -> None:
    img = decode(render_snapshot(frame(), tracked(), SnapshotConfig(max_width=1280)))
    assert img.shape[:2] == (H, W)


def test_jpeg_quality_bounds_the_size() -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    small = render_snapshot(noisy, tracked(), SnapshotConfig(jpeg_quality=20))
    large = render_snapshot(noisy, tracked(), SnapshotConfig(jpeg_quality=95))
    assert len(small) < len(large) / 2


def test_the_events_own_track_is_drawn_in_red_and_only_it() -> None:
    """The start event's snapshot shows a red box on the event's ``bbox_xyxy``; the frame's other
    track is boxed in another colour, and nothing else is red but the box's caption above it."""
    ev = start_event()
    assert ev.bbox_xyxy == OWN[1]
    events, jpegs = attach_snapshots([ev], frame(), tracked(), SnapshotConfig(), "lobby")
    img = decode(jpegs[events[0].event_id])
    scale = 640 / W
    for side in edge_pixels(img, ev.bbox_xyxy, scale):
        assert red(side).mean() > 0.9, "the event's box is not drawn in red"
    for side in edge_pixels(img, OTHER[1], scale):
        assert not red(side).any(), "another track is highlighted"
        assert (np.abs(side.astype(int) - 128).sum(axis=-1) > 100).mean() > 0.9, "the other track is not boxed"
    x1, y1, x2, y2 = (round(v * scale) for v in ev.bbox_xyxy)
    ys, xs = np.nonzero(red(img))
    # the box (lines 3 px wide before scaling) and its caption, just above its top-left corner
    assert xs.min() >= x1 - 3 and xs.max() <= x2 + 3, "red outside the event's box"
    assert ys.min() >= y1 - 20 and ys.max() <= y2 + 3, "red outside the event's box"


def test_store_redis_is_the_default_and_hands_the_jpeg_to_the_publisher() -> None:
    ev = start_event()
    update = ev.model_copy(update={"phase": "update", "event_id": "u1"})
    events, jpegs = attach_snapshots([ev, update], frame(), tracked(), EventsConfig().snapshots, "lobby")
    assert [e.snapshot for e in events] == [f"vigil:snapshot:{ev.event_id}", None]
    assert set(jpegs) == {ev.event_id}
    assert decode(jpegs[ev.event_id]).shape[:2] == (384, 640)


def test_store_dir_writes_the_jpeg_under_the_camera(tmp_path: Path) -> None:
    ev = start_event()
    cfg = SnapshotConfig(store="dir", dir=tmp_path / "snaps")
    events, jpegs = attach_snapshots([ev], frame(), tracked(), cfg, "lobby")
    path = tmp_path / "snaps" / "lobby" / f"{ev.event_id}.jpg"
    assert events[0].snapshot == str(path)
    assert jpegs == {}, "store: dir keeps snapshots out of Redis"
    assert decode(path.read_bytes()).shape[:2] == (384, 640)


def test_store_off_gives_no_snapshot() -> None:
    ev = start_event()
    events, jpegs = attach_snapshots([ev], frame(), tracked(), SnapshotConfig(store="off"), "lobby")
    assert [e.snapshot for e in events] == [None]
    assert jpegs == {}


def test_store_dir_needs_a_dir() -> None:
    with pytest.raises(ValueError, match="dir is required"):
        SnapshotConfig(store="dir")


def test_a_camera_snapshot_keeps_the_decoded_size() -> None:
    """`vigil cameras snapshot`: the frame is never scaled down (max_width does not apply), so a pixel
    of the picture is a pixel of the decoded frame, as pixel geometry is."""
    packet = FramePacket("lobby", 42, 1000.0, frame())
    snap = frame_snapshot(packet, tracked(), SnapshotConfig(max_width=640))
    assert (snap.width, snap.height, snap.frame_id, snap.captured_at) == (W, H, 42, 1000.0)
    img = decode(snap.jpeg)
    assert img.shape[:2] == (H, W)
    assert all(edge.size and not red(edge).any() for edge in edge_pixels(img, OWN[1], 1.0)), "no track highlighted"
