"""Ray processes a killed Vigil left behind, found and stopped at the next start.

A local Ray cluster started by Vigil's driver lives in a session folder
(``<ray temp dir>/session_<time>_<pid>``) whose processes (raylet, GCS, the dashboard and runtime-env
agents) stop with the driver, except when the driver is killed (SIGKILL, the OOM killer): then some
outlive it by minutes. Vigil marks the sessions it starts (a file holding the driver's process id);
at the next start, processes of a marked session whose driver is gone are stopped. Sessions Vigil
did not start (``ray start``, another application) are never touched.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MARKER = "vigil-driver.pid"
_SESSION = re.compile(r"(/[^\s=,]*/session_\d{4}-\d{2}-\d{2}_[\d_-]+)")


def session_of(cmdline: list[str]) -> Path | None:
    """The Ray session folder a process's command line names, if any."""
    for arg in cmdline:
        found = _SESSION.search(arg)
        if found:
            return Path(found.group(1))
    return None


def mark_local_session() -> Path | None:
    """Mark the session of the Ray cluster this process just started (found through its children)."""
    for child in psutil.Process().children(recursive=True):
        try:
            session = session_of(child.cmdline())
        except psutil.Error:
            continue
        if session is not None and session.is_dir():
            (session / MARKER).write_text(str(os.getpid()))
            return session
    return None


def _driver_gone(session: Path) -> bool:
    try:
        pid = int((session / MARKER).read_text())
    except (OSError, ValueError):
        return False  # not a session Vigil started
    return not psutil.pid_exists(pid)


def stop_leftovers(timeout_s: float = 5.0, under: Path | None = None) -> int:
    """Stop this user's processes of Vigil-started Ray sessions whose driver is gone; how many.
    ``under``: only sessions in that folder (default: wherever Ray put them)."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            if uid is not None and proc.info["uids"] is not None and proc.info["uids"].real != uid:
                continue
            session = session_of(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if session is None or proc.pid == os.getpid() or (under is not None and under not in session.parents):
            continue
        if _driver_gone(session):
            found.append(proc)
    for proc in found:
        try:
            proc.terminate()
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(found, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    if found:
        log.warning("stopped %d Ray process(es) left behind by a Vigil run that was killed", len(found))
    return len(found)
