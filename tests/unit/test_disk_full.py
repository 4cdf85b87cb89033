"""A full disk under the snapshots folder or the outbox is counted and logged once per episode, and
the camera's calls go on: fakes stand in for the full disk here (an OSError ENOSPC on write, an
SQLite database capped at a few pages); tests/integration/test_redis_budget.py fills a real one."""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from pipeline.core.config import SnapshotConfig
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events import spool as spool_module
from pipeline.events.publisher import EventPublisher
from pipeline.events.snapshots import attach_snapshots
from pipeline.runtime.redis_server import free_port
from tests.support.configs import sample_event
from tests.support.metrics import value
from tests.unit.test_snapshots import frame, tracked


def disk_errors(what: str) -> float:
    return value(generate_latest(VIGIL_REGISTRY).decode(), "vigil_disk_write_errors_total", what=what) or 0.0


@pytest.fixture()
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """``Path.write_bytes`` fails with ENOSPC while ``state["full"]``."""
    state = {"full": True}
    real = Path.write_bytes

    def write_bytes(self: Path, data: Any) -> int:
        if state["full"]:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    yield state


def test_snapshot_dir_full_counts_logs_once_and_events_go_on_without_snapshots(
    tmp_path: Path, full_disk: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = SnapshotConfig(store="dir", dir=tmp_path / "snaps")
    camera = "full-snapshots"
    events = [sample_event(camera, i) for i in range(3)]
    before = disk_errors("snapshots")
    with caplog.at_level(logging.INFO, logger="pipeline.events"):
        out, jpegs = attach_snapshots(events, frame(), tracked(), cfg, camera)
    assert [e.event_id for e in out] == [e.event_id for e in events], "every event goes on"
    assert [e.snapshot for e in out] == [None, None, None]
    assert jpegs == {}
    assert disk_errors("snapshots") == before + 3
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert camera in errors[0] and "disk full (ENOSPC)" in errors[0]
    assert list((tmp_path / "snaps").rglob("*.*")) == [], "no partial file is left taking room"

    caplog.clear()
    full_disk["full"] = False
    with caplog.at_level(logging.INFO, logger="pipeline.events"):
        out, _ = attach_snapshots([sample_event(camera, 9)], frame(), tracked(), cfg, camera)
    assert out[0].snapshot is not None and Path(out[0].snapshot).is_file()
    assert disk_errors("snapshots") == before + 3
    assert [r.levelno for r in caplog.records] == [logging.WARNING], "one line when the episode ends"
    assert "writable again" in caplog.records[0].getMessage()


def capped_connect(pages: int) -> Callable[..., sqlite3.Connection]:
    """``sqlite3.connect`` for a database that may grow to ``pages`` pages: SQLite's own 'database or
    disk is full' (SQLITE_FULL) once it would grow past them, as on a full disk."""
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real(*args, **kwargs)
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    return connect


def test_full_spool_disk_holds_events_in_memory_counts_and_logs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis is down and the outbox's disk fills up: publish() goes on returning, every event is still
    waiting (on disk or in memory), each failed write is counted and the episode logged once."""
    monkeypatch.setattr(spool_module.sqlite3, "connect", capped_connect(16))
    camera = "full-spool"
    pub = EventPublisher(f"redis://127.0.0.1:{free_port()}/0", camera, tmp_path / "cam.sqlite", retry_cap_s=0.2)
    before = disk_errors("spool")
    jpeg = b"\xff" * 20_000
    events = [sample_event(camera, i) for i in range(20)]
    with caplog.at_level(logging.ERROR, logger="pipeline.events"):
        for ev in events:
            pub.publish([ev], {ev.event_id: jpeg})
    assert pub.spooled == len(events), "every event waits, on disk or in memory"
    failed = disk_errors("spool") - before
    assert failed >= 1, "the failed spool writes are counted"
    errors = [r.getMessage() for r in caplog.records if r.name == "pipeline.events.disk"]
    assert len(errors) == 1, errors
    assert camera in errors[0] and "database or disk is full" in errors[0] and "memory" in errors[0]
    pub.close(flush_timeout_s=0.2)
