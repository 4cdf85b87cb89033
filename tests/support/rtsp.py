"""Starts tests/support/rtsp_server.py (GStreamer, needs Debian's python3-gi) as a subprocess."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path

RTSP_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


class RtspServer:
    """A GStreamer RTSP server serving one file (looped) on 127.0.0.1, optionally with basic auth."""

    def __init__(
        self, video: Path, mount: str = "/cam", user: str | None = None, password: str | None = None, udp: bool = False
    ):
        self.video, self.mount, self.udp = video, mount, udp
        self.user, self.password = user, password
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()

    def start(self, port: int | None = None) -> str:
        """Start (or restart, on the same port unless ``port`` says otherwise) and wait until it listens."""
        args = [
            SYSTEM_PYTHON,
            str(RTSP_SCRIPT),
            "--file",
            str(self.video),
            "--mount",
            self.mount,
            "--port",
            str(self.port if port is None else port),
        ]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        if self.udp:
            args.append("--udp")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server prints READY <port> (or dies)
        if not line.startswith("READY"):
            self._log.seek(0)
            raise RuntimeError(f"RTSP server did not start: {line.strip()} {self._log.read()[-2000:]}")
        self.port = int(line.split()[1])
        return self.url

    @property
    def url(self) -> str:
        return self.url_with()

    def url_with(self, user: str | None = None, password: str | None = None, mount: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{mount or self.mount}"

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its sockets open but sends nothing (a frozen camera)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die until continued
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()
