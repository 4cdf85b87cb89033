"""Snapshots: a JPEG of the frame with the boxes drawn, for every start event."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import SnapshotConfig
from pipeline.core.messages import Detections

SNAPSHOT_PREFIX = "vigil:snapshot:"
_HIGHLIGHT = (0, 0, 255)
_OTHER = (0, 200, 255)


def snapshot_key(event_id: str) -> str:
    """Redis key of an event's snapshot."""
    return f"{SNAPSHOT_PREFIX}{event_id}"


def render_snapshot(
    image_bgr: npt.NDArray[np.uint8], det: Detections, cfg: SnapshotConfig, highlight_track: int | None = None
) -> bytes:
    """Draw every box (the highlighted track in red, thicker) and encode as JPEG, at most ``max_width`` wide."""
    img = image_bgr.copy()
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


def write_snapshot_file(directory: Path, camera_id: str, event_id: str, jpeg: bytes) -> Path:
    """Store a snapshot as ``<dir>/<camera>/<event_id>.jpg`` (atomically) and return its path."""
    path = directory / camera_id / f"{event_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(jpeg)
    tmp.replace(path)
    return path
