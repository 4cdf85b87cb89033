"""`vigil cameras` and `vigil events` find the pipeline `vigil run` started on this machine without a
--redis-url: a real run on a real (password-protected) redis-server on a free port, real CLI processes."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime.redis_server import EmbeddedRedis

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


def read_until(proc: subprocess.Popen[str], pattern: str, lines: list[str]) -> None:
    """Read the run's output line by line until ``pattern`` matches (the run's own signal)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return
    raise AssertionError(f"the run ended before printing {pattern!r}:\n{''.join(lines)}")


@pytest.mark.timeout(300)
def test_cameras_list_finds_the_running_pipeline_without_flags(tmp_path: Path, street_mp4: Path) -> None:
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"cameras:\n  - {{id: cam, url: '{street_mp4}', fps: 5, loop: true}}\n"
        f"events:\n  spool: {{dir: '{tmp_path / 'spool'}'}}\n"
        "ray: {num_cpus: 2}\n"
    )
    records = tmp_path / "state" / "vigil" / "pipelines"
    user = {k: v for k, v in os.environ.items() if k != "VIGIL_REDIS_URL"}
    user["XDG_STATE_HOME"] = str(tmp_path / "state")
    lines: list[str] = []
    with EmbeddedRedis(password="p4ssw0rd") as server:
        proc = subprocess.Popen(
            [*VIGIL, "run", str(cfg), "--redis-url", server.url, "--no-view", "--metrics-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=user,
        )
        try:
            read_until(proc, r"metrics on http://", lines)  # printed once the pipeline runs
            [record] = records.glob("*.json")
            assert stat.S_IMODE(record.stat().st_mode) == 0o600
            assert json.loads(record.read_text())["config"] == str(cfg.resolve())

            listed = subprocess.run(
                [*VIGIL, "cameras", "list", "--json"], capture_output=True, text=True, timeout=60, env=user
            )
            assert listed.returncode == 0, listed.stdout + listed.stderr
            assert [c["camera_id"] for c in json.loads(listed.stdout)] == ["cam"]
            assert listed.stderr == ""  # one pipeline: used without a word
            replayed = subprocess.run(
                [*VIGIL, "events", "replay", "--since", "1h"], capture_output=True, text=True, timeout=60, env=user
            )
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr
            assert "p4ssw0rd" not in listed.stdout + replayed.stdout + replayed.stderr

            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=120)
            lines.append(out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert list(records.glob("*.json")) == [], "the run left its record behind"
