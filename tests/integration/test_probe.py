"""`vigil cameras probe URL` as a user runs it before listing a camera: against a real RTSP server
(with a password, which no line may show), a file, a closed port and malformed URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runtime.redis_server import free_port
from tests.integration.conftest import RTSP_PASSWORD as SECRET
from tests.support.rtsp import RtspServer

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, "cameras", "probe", *args], capture_output=True, text=True, timeout=60)


def test_an_rtsp_camera_answers_with_its_stream(auth_rtsp_server: RtspServer) -> None:
    result = probe(auth_rtsp_server.url_with("viewer", SECRET), "--timeout", "10")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"rtsp://***@127.0.0.1:{auth_rtsp_server.port}/cam: h264, 640x360, ")
    assert "fps, first frame decoded in " in line and line.endswith(" ms)")
    assert SECRET not in result.stdout + result.stderr


def test_a_file_answers_with_its_stream(street_mp4: Path) -> None:
    result = probe(str(street_mp4))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{street_mp4}: h264, 640x360, 10 fps, first frame decoded in ")


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("rtsp://viewer:{secret}@127.0.0.1:{closed}/cam", 1, "cannot open rtsp://***@127.0.0.1:{closed}/cam: "),
        ("rtsp://viewer:wrong-{secret}@127.0.0.1:{port}/cam", 1, "401 unauthorized: wrong or missing credentials"),
        ("rtsp://viewer:{secret}@127.0.0.1:{port}/nope", 1, "/nope: 404 not found: wrong path or stream name"),
        ("/no/such/video.mp4", 1, "file not found: /no/such/video.mp4"),
        ("rtsp://viewer:{secret}@127.0.0.1:99999/cam", 2, "malformed URL rtsp://***@127.0.0.1:99999/cam: its port"),
        ("rtsp:///cam", 2, "malformed URL rtsp:///cam: it names no host"),
        ("ftp://viewer:{secret}@cam/stream", 2, "url: unsupported URL scheme 'ftp'"),
    ],
    ids=["closed-port", "wrong-password", "wrong-path", "missing-file", "bad-port", "no-host", "bad-scheme"],
)
def test_a_source_that_fails_is_one_redacted_line(
    auth_rtsp_server: RtspServer, url: str, code: int, message: str
) -> None:
    values = {"secret": SECRET, "port": auth_rtsp_server.port, "closed": free_port()}
    result = probe(url.format(**values), "--timeout", "5")
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message.format(**values) in result.stderr
    assert SECRET not in result.stderr
