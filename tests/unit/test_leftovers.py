"""Ray processes left behind by a killed Vigil driver are stopped at the next start, and nothing
else is: real processes standing in for Ray's, named by their session folder the way Ray's are."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.runtime.leftovers import MARKER, session_of, stop_leftovers


def session(tmp_path: Path, name: str, driver_pid: int | None) -> Path:
    folder = tmp_path / "ray" / f"session_2026-12-07_10-00-00_{name}"
    folder.mkdir(parents=True)
    if driver_pid is not None:
        (folder / MARKER).write_text(str(driver_pid))
    return folder


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def like_ray(procs: list[subprocess.Popen[bytes]], folder: Path) -> subprocess.Popen[bytes]:
    """A process whose command line names ``folder`` as Ray's agents do (``--session-dir=...``)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "ray/dashboard/agent.py", f"--session-dir={folder}"]
    )
    procs.append(proc)
    return proc


@pytest.mark.timeout(30)
def test_only_processes_of_a_vigil_session_whose_driver_died_are_stopped(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    orphan = like_ray(spawn, session(tmp_path, "111_1", dead_pid()))
    running = like_ray(spawn, session(tmp_path, "222_2", os.getpid()))  # its driver lives
    foreign = like_ray(spawn, session(tmp_path, "333_3", None))  # `ray start`: not Vigil's
    assert stop_leftovers(timeout_s=5, under=tmp_path) == 1  # only this test's sessions, whatever the mutant
    assert not psutil.pid_exists(orphan.pid)  # stopped, and reaped by the wait
    assert running.poll() is None and foreign.poll() is None


def test_session_folders_are_read_from_ray_command_lines() -> None:
    sockets = "--raylet_socket_name=/tmp/ray/session_2026-12-07_10-38-45_377981_20377/sockets/raylet"
    assert session_of(["raylet", sockets]) == Path("/tmp/ray/session_2026-12-07_10-38-45_377981_20377")
    assert session_of(["python", "-m", "pytest"]) is None
