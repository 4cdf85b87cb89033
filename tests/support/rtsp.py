"""Starts tests/support/rtsp_server.py (GStreamer, needs Debian's python3-gi) as a subprocess."""

from __future__ import annotations

import subprocess
from pathlib import Path

RTSP_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspServer:
    """A GStreamer RTSP server serving one file (looped) on 127.0.0.1."""

    def __init__(self, video: Path, mount: str = "/cam") -> None:
        self.video, self.mount = video, mount
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, port: int = 0) -> str:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--file", str(self.video), "--mount", self.mount, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server prints READY <port> (or dies)
        if not line.startswith("READY"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"RTSP server did not start: {line.strip()} {err.strip()}")
        self.port = int(line.split()[1])
        return self.url

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
