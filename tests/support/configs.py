"""Configs and events the tests build again and again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.core.config import VigilConfig, parse_config
from pipeline.core.messages import Event, utc_iso


def chatty_config(cameras: list[dict[str, Any]], spool_dir: Path, update_interval_s: float = 5.0) -> VigilConfig:
    """A config whose untrained clip head raises events quickly: every clip label counts (untrained
    heads are never confident), short windows, metrics on a free port, the spool in ``spool_dir``."""
    return parse_config(
        {
            "cameras": cameras,
            "metrics": {"port": 0},
            "models": {"detector": {"weights": "yolo11n.yaml", "imgsz": 320}, "temporal": {"window": 4, "stride": 2}},
            "events": {
                "clip_min_confidence": 0.0,
                "clip_ignore_labels": [],
                "clip_min_windows": 1,
                "update_interval_s": update_interval_s,
                "spool": {"dir": str(spool_dir)},
            },
        }
    )


def sample_event(camera: str, seq: int, label: str = "person", captured_at: float | None = None) -> Event:
    """An object start event with ``frame_id == track_id == seq``."""
    now = time.time() if captured_at is None else captured_at
    return Event(
        incident_id=f"{camera}-{seq}",
        phase="start",
        camera_id=camera,
        kind="object",
        label=label,
        confidence=0.9,
        peak_confidence=0.9,
        ts=utc_iso(now),
        started_at=utc_iso(now),
        duration_s=0.0,
        frame_id=seq,
        track_id=seq,
        track_ids=(seq,),
        bbox_xyxy=(1.0, 2.0, 3.0, 4.0),
        captured_at=now,
    )
