"""Local disk writes that fail (disk full, over quota, read-only, I/O error): counted, logged once per
episode, never fatal to a camera.

``WriteFailures(what, camera)`` is one writer's record: ``failed(exc)`` counts the failure in
``vigil_disk_write_errors_total{what}`` and logs one line when an episode starts; ``succeeded()``
ends the episode with one line.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading

from pipeline.core.metrics import DISK_WRITE_ERRORS

log = logging.getLogger(__name__)

SPOOL = "spool"
SNAPSHOTS = "snapshots"
# What a failed local write raises: the OS's errors, and SQLite's for the outbox ("database or disk
# is full", "disk I/O error", "attempt to write a readonly database").
DISK_ERRORS: tuple[type[Exception], ...] = (OSError, sqlite3.OperationalError)
_FULL = {errno.ENOSPC, errno.EDQUOT}
for _what in (SPOOL, SNAPSHOTS):  # the series exist from the start, at zero
    DISK_WRITE_ERRORS.labels(_what)


def describe(exc: BaseException) -> str:
    """One line naming the failure: ``disk full (ENOSPC)``, ``over quota (EDQUOT)``, or the error."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return f"{'disk full' if exc.errno == errno.ENOSPC else 'over quota'} ({errno.errorcode[exc.errno]})"
    return f"{type(exc).__name__}: {exc}"


class WriteFailures:
    """Failures of one writer (``what``: spool or snapshots) for one camera."""

    def __init__(self, what: str, camera_id: str) -> None:
        self.what, self.camera_id = what, camera_id
        self._lock = threading.Lock()
        self._failing = False
        self.failures = 0  # in the current episode

    @property
    def failing(self) -> bool:
        return self._failing

    def failed(self, exc: BaseException, consequence: str) -> None:
        """Count one failed write; the first of an episode logs ``consequence`` (what happens instead)."""
        DISK_WRITE_ERRORS.labels(self.what).inc()
        with self._lock:
            first, self._failing = not self._failing, True
            self.failures = 1 if first else self.failures + 1
        if first:
            log.error("camera %s: cannot write the %s: %s; %s", self.camera_id, self.what, describe(exc), consequence)

    def succeeded(self) -> None:
        with self._lock:
            ended, failures = self._failing, self.failures
            self._failing, self.failures = False, 0
        if ended:
            log.warning(
                "camera %s: the %s is writable again (%d writes had failed)", self.camera_id, self.what, failures
            )
