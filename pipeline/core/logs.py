"""Logging setup, in one place. Library code only asks for ``logging.getLogger(__name__)``; the process
entry points (the ``vigil`` command, a Ray actor's constructor) call :func:`configure_logging` once."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Send the process's log records at ``level`` and above to stderr in Vigil's one format.

    Idempotent: only the first call in a process does anything, and none does where the root logger
    already has handlers (an application embedding Vigil, pytest's log capture), whose choice stands.
    """
    logging.basicConfig(level=level, format=LOG_FORMAT)
