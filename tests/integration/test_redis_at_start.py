"""Redis stopped while `vigil run` is still starting (the camera host loading its models): the run
goes on without a traceback, spools its events, and once Redis is back every client it has answers
again: the events arrive, camera commands are taken, and Ctrl-C ends it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from pipeline.events.publisher import EVENTS_STREAM
from pipeline.events.spool import Spool
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import chatty_yaml, vigil_run
from tests.support.wait import wait_for


def _camera_hosts(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    hosts = []
    for child in children:
        try:
            if "CameraHost" in child.name() or "CameraHost" in " ".join(child.cmdline()):
                hosts.append(child)
        except psutil.Error:
            continue
    return hosts


def _spooled_events(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for r in Spool.read(path) if r.kind != "status")


@pytest.mark.timeout(540)  # the waits below add up to 480 s on a loaded machine
def test_redis_stopped_during_model_loading(tmp_path: Path, street_mp4: Path) -> None:
    spool = tmp_path / "spool"
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(chatty_yaml(street_mp4, spool))
    server = EmbeddedRedis()
    server.start()
    cli = [sys.executable, "-m", "pipeline.cli.app"]
    proc = subprocess.Popen(
        vigil_run(cfg, server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The camera host appears once Redis has been checked and Ray started; it then loads the models.
        wait_for(lambda: _camera_hosts(proc.pid) or proc.poll() is not None, 120, "the camera host to start")
        assert proc.poll() is None, "the run ended before its camera host started"
        server.stop()
        wait_for(lambda: _spooled_events(spool / "cam.sqlite") >= 3 or proc.poll() is not None, 120, "events spooled")
        assert proc.poll() is None, "the run stopped when Redis went away during its start"

        server.start()
        client = redis.Redis.from_url(server.url)
        delivered = lambda: client.exists(EVENTS_STREAM) and client.xlen(EVENTS_STREAM) >= 3  # noqa: E731
        wait_for(delivered, 60, "spooled events delivered")
        # The control thread, which never reached Redis at its start, answers a camera command now.
        listed = subprocess.run(
            [*cli, "cameras", "list", "--redis-url", server.url, "--json"], capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        cameras: Any = json.loads(listed.stdout)
        assert [c["camera_id"] for c in cameras] == ["cam"]
        client.close()

        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        assert "Traceback" not in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()
