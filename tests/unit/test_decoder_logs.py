"""A camera that does not answer fills no terminal: FFmpeg's and OpenCV's own log lines (two per
reconnect attempt, forever) stay out of stderr; the camera's states say what happened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime.redis_server import free_port

# Vigil's decoder, its default opener (OpenCV's FFmpeg backend, PyAV to ask why an open failed), a closed
# port and two reconnect attempts; the states it went through go to stdout, one per line.
CHILD = """
import sys
from pipeline.core.config import CameraConfig
from workers.decoder import Backoff, FrameSource

cfg = CameraConfig(id="dead", url=sys.argv[1], max_reconnects=2, open_timeout_s=2, read_timeout_s=2)
source = FrameSource(
    cfg,
    on_state=lambda state, reason: print(state.value, reason, flush=True),
    on_drop=lambda reason: None,
    backoff=Backoff(0.05, 0.1),
)
source.start()
sys.exit(0 if source.finished.wait(60) else 1)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_closed_port_prints_only_the_cameras_states(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/x"
    child = subprocess.run([sys.executable, "-c", CHILD, url], capture_output=True, text=True, cwd=tmp_path, timeout=90)
    assert child.returncode == 0, child.stdout + child.stderr
    states = [line.split(" ", 1)[0] for line in child.stdout.splitlines()]
    assert states == ["connecting", "reconnecting", "failed"], child.stdout
    assert "Connection refused" in child.stdout  # the reason, in Vigil's own words
    assert child.stderr.strip() == "", f"native log lines reached stderr:\n{child.stderr}"
