"""Prompts changed on a running pipeline (``vigil prompts set``): the demo pack labels scenes and
activities from words; new words relabel the next frames and windows without a restart, through the
control channel, and a camera host killed afterwards comes back labelling with them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import redis
import yaml

from pipeline.core.config import CameraConfig
from pipeline.core.messages import CameraState
from pipeline.events.publisher import camera_stream
from pipeline.runtime.control import ControlClient
from tests.support.configs import demo_pack_config
from tests.support.running import Running, running_pipeline
from tests.support.wait import wait_for

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]

SCENES = {"street": ["a street with traffic"], "parking": ["a car park"], "corridor": ["an indoor corridor"]}
NEW_SCENES = {"road": ["a road with cars driving"], "carpark": ["cars parked in rows"], "hall": ["a hallway"]}
NEW_ACTIVITIES = {
    "tumble": ["somebody collapsing to the floor"],
    "dash": ["someone sprinting"],
    "linger": ["a person waiting around for ages"],
}
NEW_LABELS = {*NEW_ACTIVITIES, "normal"}  # the background stays as started
# docs/models.md: new prompts apply from each model's next batch; a window is 16 frames at 5 fps
# here (about 3 s), and the margin is for a loaded 2-core machine.
RELABEL_S = 60.0
RESTART_S = 90.0  # a new camera host loads the models before its camera runs again


@pytest.fixture(scope="module")
def running(ray_session: None, street_mp4: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The demo pack with scenes and activities from prompts, one live camera; every window's label
    is an event (the street video has no scripted activity)."""
    tmp = tmp_path_factory.mktemp("prompts")
    overrides = {
        "metrics.port": 0,
        "models.zero_shot.scenes": SCENES,
        "models.zero_shot.scene_min_score": 0.0,
        "events.clip_ignore_labels": [],
        "events.clip_min_confidence": 0.0,
        "events.clip_min_windows": 1,
        "events.spool.dir": str(tmp / "spool"),
    }
    cfg = demo_pack_config(overrides)
    cam = CameraConfig.model_validate({"id": "cam", "url": str(street_mp4), "mode": "live", "fps": 5, "loop": True})
    with running_pipeline(cfg.model_copy(update={"cameras": (cam,)})) as run:
        yield run


def clip_starts(url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        entries: Any = client.xrange(camera_stream("cam"))
    finally:
        client.close()
    docs = [json.loads(fields[b"event"]) for _id, fields in entries]
    return [d for d in docs if d["kind"] == "clip" and d["phase"] == "start"]


def labels_since(url: str, t: float) -> set[str]:
    """The labels of clip incidents started from frames captured after Unix time ``t``."""
    return {d["label"] for d in clip_starts(url) if d["captured_at"] > t}


def status(run: Running) -> Any:
    [found] = run.pipeline.statuses()
    return found


def scene(run: Running) -> str:
    """The camera's scene label now (its status shows it with the confidence: ``street 0.98``)."""
    shown = status(run).scene
    return shown.split()[0] if shown else ""


def vigil(run: Running, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [*VIGIL, *args, "--redis-url", run.url], capture_output=True, text=True, timeout=120, input=stdin, env=env
    )


def host_pid(run: Running) -> int | None:
    """The camera host's process id; None while there is none that answers (it died, a new one starts)."""
    assert run.pipeline.hosts is not None
    hosts = run.pipeline.hosts.actors()
    try:
        pids: list[int] = ray.get([h.pid.remote() for h in hosts], timeout=60)
    except ray.exceptions.RayActorError:
        return None
    return pids[0] if len(pids) == 1 else None


@pytest.mark.timeout(600)
def test_new_prompts_relabel_without_a_restart_and_survive_a_host_restart(running: Running, tmp_path: Path) -> None:
    run = running
    wait_for(lambda: scene(run) in SCENES and clip_starts(run.url), 180, "scenes and a clip from the prompts")
    old_labels = {d["label"] for d in clip_starts(run.url)}
    assert old_labels <= {"fall", "loiter", "run", "abandoned_object", "crowd", "normal"}, old_labels
    pid = host_pid(run)
    assert pid is not None

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(yaml.safe_dump({"scenes": NEW_SCENES, "activities": NEW_ACTIVITIES}, sort_keys=False))
    done = vigil(run, "prompts", "set", str(prompts))
    assert done.returncode == 0, done.stderr
    assert "scenes: road, carpark, hall; activities: tumble, dash, linger" in done.stdout
    set_at = time.time()
    wait_for(lambda: scene(run) in {*NEW_SCENES, "unknown"}, RELABEL_S, "a scene from the new prompts")
    wait_for(lambda: labels_since(run.url, set_at), RELABEL_S, "a clip incident started after the change")
    assert labels_since(run.url, set_at + 1.0) <= NEW_LABELS, labels_since(run.url, set_at + 1.0)
    assert host_pid(run) == pid, "nothing restarted"

    keyless = {k: v for k, v in os.environ.items() if k != "VIGIL_CONTROL_KEY"} | {"XDG_CONFIG_HOME": str(tmp_path)}
    shown = vigil(run, "prompts", "show", env=keyless)
    assert shown.returncode == 0, shown.stderr
    section = yaml.safe_load(shown.stdout)
    assert "backend" not in section and set(section["activities"]) == set(NEW_ACTIVITIES)
    running_now = ControlClient(run.url).prompts()
    assert running_now is not None and set(running_now["scenes"]) == set(NEW_SCENES) and "backend" not in running_now

    typo = vigil(run, "prompts", "set", "-", stdin="activitys: {skip: [someone skipping]}\n")
    added = vigil(run, "prompts", "set", "-", stdin="attributes: {person: {down: [lying]}}\n")
    no_key = vigil(run, "prompts", "set", str(prompts), env=keyless)
    assert typo.returncode == 2 and "models.zero_shot.activitys: unknown key; did you mean 'activities'?" in typo.stderr
    assert added.returncode == 2 and "attributes: cannot be added while running" in added.stderr
    assert no_key.returncode == 1 and "no control key" in no_key.stderr
    for result in (typo, added, no_key):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert set(run.pipeline.prompts().activities) == set(NEW_ACTIVITIES), "refused changes change nothing"  # type: ignore[union-attr]

    os.kill(pid, signal.SIGKILL)  # what the OOM killer does
    wait_for(lambda: host_pid(run) not in (pid, None), RESTART_S, "a new camera host")
    wait_for(lambda: status(run).state is CameraState.STREAMING, RESTART_S, "the camera to stream again")
    restarted_at = time.time()
    wait_for(lambda: labels_since(run.url, restarted_at), RELABEL_S, "a clip incident started after the restart")
    assert labels_since(run.url, restarted_at) <= NEW_LABELS, "the new host labels with the prompts set at run time"
    wait_for(lambda: scene(run) in {*NEW_SCENES, "unknown"}, RELABEL_S, "a scene from the new prompts")
