"""Configs and events the tests build again and again."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.core.config import VigilConfig, load_config, parse_config
from pipeline.core.messages import Event, utc_iso

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "models" / "demo"


def demo_pack_config(overrides: dict[str, Any]) -> VigilConfig:
    """configs/demo.yaml with ``overrides`` (dotted key paths), its models the repository's pack
    whatever $VIGIL_MODELS_DIR says; the environment is left as it was."""
    old = os.environ.get("VIGIL_MODELS_DIR")
    os.environ["VIGIL_MODELS_DIR"] = str(PACK)
    try:
        return load_config(REPO / "configs" / "demo.yaml", overrides)
    finally:
        if old is None:
            os.environ.pop("VIGIL_MODELS_DIR", None)
        else:
            os.environ["VIGIL_MODELS_DIR"] = old


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


def chatty_yaml(video: Path, spool_dir: Path) -> str:
    """A config file for `vigil run` whose one looped camera ``cam`` reads ``video`` and raises clip
    events at once (every label counts, short windows, frequent updates); the outbox in ``spool_dir``."""
    return (
        f"cameras:\n  - {{id: cam, url: '{video}', fps: 5, loop: true}}\n"
        "models:\n  temporal: {window: 4, stride: 2}\n"
        "events:\n  clip_min_confidence: 0.0\n  clip_ignore_labels: []\n  clip_min_windows: 1\n"
        f"  update_interval_s: 0.3\n  spool: {{dir: '{spool_dir}'}}\n"
        "ray: {num_cpus: 2}\n"
    )


def vigil_run(config: Path, redis_url: str, *extra: str) -> list[str]:
    """The command line of `vigil run CONFIG` against ``redis_url``, without the view, metrics on a free port."""
    return [sys.executable, "-m", "pipeline.cli.app", "run", str(config), "--redis-url", redis_url, "--no-view",
            "--metrics-port", "0", *extra]  # fmt: skip


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
