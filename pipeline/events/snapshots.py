"""Snapshots: a JPEG of the frame with the boxes (and the camera's zones and lines) drawn, for every
start and instant event."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import SnapshotConfig
from pipeline.core.messages import Detections, Event, FramePacket
from pipeline.events.disk import DISK_ERRORS, SNAPSHOTS, WriteFailures
from workers.analytics import TrackAnalytics, draw_geometry

SNAPSHOT_PREFIX = "vigil:snapshot:"
_HIGHLIGHT = (0, 0, 255)
_OTHER = (0, 200, 255)
_DIR_WRITES: dict[str, WriteFailures] = {}  # store: dir, per camera of this process


def snapshot_key(event_id: str) -> str:
    """Redis key of an event's snapshot."""
    return f"{SNAPSHOT_PREFIX}{event_id}"


def render_snapshot(
    image_bgr: npt.NDArray[np.uint8],
    det: Detections,
    cfg: SnapshotConfig,
    highlight_track: int | None = None,
    analytics: TrackAnalytics | None = None,
) -> bytes:
    """Draw the camera's zones and lines (where it has them), every box (the highlighted track in
    red, thicker) and encode as JPEG, at most ``max_width`` wide."""
    img = image_bgr.copy()
    if analytics is not None and analytics.geometry is not None:
        draw_geometry(img, analytics.geometry)
    for i in range(len(det)):
        x1, y1, x2, y2 = (int(v) for v in det.xyxy[i])
        tid = int(det.tracker_id[i])
        hot = highlight_track is not None and tid == highlight_track
        color, thick = (_HIGHLIGHT, 3) if hot else (_OTHER, 1)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
        text = f"{det.label(i)} #{tid} {float(det.confidence[i]):.2f}"
        cv2.putText(img, text, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    h, w = img.shape[:2]
    if w > cfg.max_width:
        size_wh = (cfg.max_width, round(h * cfg.max_width / w))
        img = np.asarray(cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf)


@dataclass(frozen=True)
class FrameSnapshot:
    """A camera's latest processed frame as a JPEG at its decoded size (``vigil cameras snapshot``)."""

    jpeg: bytes
    width: int  # pixels of the frame as decoded (after resize_wh): what pixel geometry is in
    height: int
    frame_id: int
    captured_at: float


def frame_snapshot(
    packet: FramePacket, det: Detections, cfg: SnapshotConfig, analytics: TrackAnalytics | None = None
) -> FrameSnapshot:
    """``packet``'s frame with its tracked boxes (ids included) and the camera's zones and lines drawn,
    never scaled down: a pixel of the picture is a pixel of the decoded frame."""
    width, height = packet.resolution_wh
    full_size = cfg.model_copy(update={"max_width": width})
    jpeg = render_snapshot(packet.image_bgr, det, full_size, analytics=analytics)
    return FrameSnapshot(jpeg, width, height, packet.frame_id, packet.captured_at)


def write_snapshot_file(directory: Path, camera_id: str, event_id: str, jpeg: bytes) -> Path:
    """Store a snapshot as ``<dir>/<camera>/<event_id>.jpg`` (atomically) and return its path."""
    path = directory / camera_id / f"{event_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(jpeg)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a partial file on a full disk takes the room the next write needs
        raise
    return path


def attach_snapshots(
    events: list[Event],
    image_bgr: npt.NDArray[np.uint8],
    det: Detections,
    cfg: SnapshotConfig,
    camera_id: str,
    analytics: TrackAnalytics | None = None,
) -> tuple[list[Event], dict[str, bytes]]:
    """Give every start and instant event a snapshot of ``image_bgr`` (its own track highlighted), stored as
    ``cfg.store`` says. Returns the events, each start event's ``snapshot`` set to where its JPEG is,
    and the JPEGs to publish with them by event id (``redis``: key ``vigil:snapshot:<event_id>``;
    ``dir``: the file ``<dir>/<camera>/<event_id>.jpg``, already written; ``off``: none). A file that
    cannot be written (disk full, ...) is counted in ``vigil_disk_write_errors_total{what="snapshots"}``
    and its event goes out without a snapshot."""
    if cfg.store == "off":
        return list(events), {}
    out: list[Event] = []
    jpegs: dict[str, bytes] = {}
    for ev in events:
        if ev.phase in ("start", "instant"):
            jpeg = render_snapshot(image_bgr, det, cfg, highlight_track=ev.track_id, analytics=analytics)
            if cfg.store == "redis":
                jpegs[ev.event_id] = jpeg
                ref = snapshot_key(ev.event_id)
            else:
                assert cfg.dir is not None  # the config validator requires it for store: dir
                written = _write_file(cfg.dir, camera_id, ev.event_id, jpeg)
                if written is None:
                    out.append(ev)
                    continue
                ref = str(written)
            ev = ev.model_copy(update={"snapshot": ref})
        out.append(ev)
    return out, jpegs


def _write_file(directory: Path, camera_id: str, event_id: str, jpeg: bytes) -> Path | None:
    """``write_snapshot_file``, or None (counted, logged once per episode) when the disk refuses it."""
    failures = _DIR_WRITES.get(camera_id)
    if failures is None:
        failures = _DIR_WRITES[camera_id] = WriteFailures(SNAPSHOTS, camera_id)
    try:
        path = write_snapshot_file(directory, camera_id, event_id, jpeg)
    except DISK_ERRORS as exc:
        failures.failed(exc, "start events go out without a snapshot until it is writable")
        return None
    failures.succeeded()
    return path
