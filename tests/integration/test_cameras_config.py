"""configs/cameras.yaml, the start for real cameras, run as the README says: `vigil run` on its sample
camera, with the demo detector standing in for the hub's yolo11n.pt (through VIGIL_DETECTOR, as a
user without internet would give a local file) and a generated street video as the sample."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.events.publisher import EVENTS_STREAM
from pipeline.runtime.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parents[2]
VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


@pytest.mark.timeout(180)
def test_run_on_the_sample_camera_publishes_object_events_only(tmp_path: Path, street_mp4: Path) -> None:
    env = dict(os.environ)
    env |= {
        "VIGIL_DETECTOR": str(REPO / "models" / "demo" / "detector.pt"),
        "VIGIL_SAMPLE_VIDEO": str(street_mp4),
        "VIGIL_STATE_DIR": str(tmp_path / "state"),
    }
    with EmbeddedRedis() as server:
        args = ["--no-view", "--metrics-port", "0", "--redis-url", server.url]
        run = subprocess.run(
            [*VIGIL, "run", str(REPO / "configs" / "cameras.yaml"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=170,
        )
        output = run.stdout + run.stderr
        assert run.returncode == 0, output
        # A file camera reads its file once, then the run ends by itself.
        final = re.search(r"sample: stopped, (\d+) frames processed, \d+ dropped, (\d+) events \(end of file\)", output)
        assert final is not None, output
        frames, published = int(final.group(1)), int(final.group(2))
        assert frames >= 45, output  # 10 s of video at fps 5
        client = redis.Redis.from_url(server.url, decode_responses=True)
        entries: Any = client.xrange(EVENTS_STREAM)
        events = [json.loads(fields["event"]) for _, fields in entries]
        client.close()
    assert published == len(events) > 0, output
    # People are found; the untrained scene ViT and clip head raise nothing.
    assert {e["kind"] for e in events} == {"object"}
    assert "person" in {e["label"] for e in events}
    assert (tmp_path / "state" / "spool").is_dir()
    assert "Traceback" not in output
