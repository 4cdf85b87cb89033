"""configs/cameras.yaml, the start for real cameras, run as the README says: `vigil run` on its sample
camera, with the demo detector standing in for the hub's yolo11n.pt (through VIGIL_DETECTOR, as a
user without internet would give a local file) and a generated street video as the sample. It runs
no scene ViT and no clip head (``models.classifier: null``, ``models.temporal: null``), in every
placement."""

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

from pipeline.core.config import load_config
from pipeline.core.messages import CameraState
from pipeline.events.publisher import EVENTS_STREAM
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.metrics import samples, scrape
from tests.support.running import running_pipeline
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


@pytest.mark.timeout(180)
def test_run_on_the_sample_camera_publishes_object_and_line_events_and_no_clips(
    tmp_path: Path, street_mp4: Path
) -> None:
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
    # People are found and cross the sample's line; no clip head runs, so no clip events.
    kinds = {e["kind"] for e in events}
    assert {"object", "line"} <= kinds <= {"object", "line", "zone", "dwell"}
    assert "person" in {e["label"] for e in events}
    assert (tmp_path / "state" / "spool").is_dir()
    assert "Traceback" not in output


@pytest.mark.timeout(300)
@pytest.mark.parametrize("placement", ["hosts", "workers", "fused"])
def test_no_vit_and_no_clip_head_run_in_any_placement(
    placement: str, ray_session: None, street_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configs/cameras.yaml in each placement (workers and fused asked for a clip-head actor): the
    pipeline starts no classifier or clip-head actor, no ViT or clip head is called anywhere, the
    cameras show no scene and no clip label, and the sample's people raise object events, no clip events."""
    monkeypatch.setenv("VIGIL_DETECTOR", str(REPO / "models" / "demo" / "detector.pt"))
    monkeypatch.setenv("VIGIL_SAMPLE_VIDEO", str(street_mp4))
    monkeypatch.setenv("VIGIL_STATE_DIR", str(tmp_path / "state"))
    overrides: dict[str, Any] = {"ray.placement": placement, "metrics.port": 0, "models.detector.imgsz": 320}
    if placement != "hosts":
        overrides["ray.clip_head"] = "actor"
    cfg = load_config(REPO / "configs" / "cameras.yaml", overrides)
    assert cfg.models.classifier is None and cfg.models.temporal is None
    with running_pipeline(cfg) as run:
        assert run.pipeline.plan is not None
        kinds = {kind for kind, _handle in run.pipeline.plan.actors().values()}
        assert kinds == (set() if placement == "hosts" else {"vision" if placement == "fused" else "detector"})
        before = samples(scrape(run.metrics_port))  # earlier pipelines of this test process count too
        wait_for(lambda: [s.state for s in run.pipeline.statuses()] == [CameraState.STOPPED], 240, "the sample to end")
        statuses = run.pipeline.statuses()
        found = samples(scrape(run.metrics_port))
        client = redis.Redis.from_url(run.url, decode_responses=True)
        entries: Any = client.xrange(EVENTS_STREAM)
        events = [json.loads(fields["event"]) for _, fields in entries]
        client.close()
    assert statuses[0].frames_processed >= 45
    assert statuses[0].scene is None and statuses[0].clip is None  # the live view shows "-" for both
    assert events and "person" in {e["label"] for e in events if e["kind"] == "object"}
    assert "clip" not in {e["kind"] for e in events}
    called = {
        dict(labels)["model"]
        for (name, labels), n in found.items()
        if name == "vigil_batch_size_count" and n > before.get((name, labels), 0)
    }
    assert called == {"detector"}
    stages = {
        dict(labels)["stage"]
        for (name, labels), n in found.items()
        if name == "vigil_stage_latency_seconds_count" and n > before.get((name, labels), 0)
    }
    assert not stages & {"classify", "temporal"}
