"""A bounded, durable on-disk outbox for events (SQLite, WAL).

Every event is written here first and deleted only after Redis confirmed it, so events survive a
Redis outage and a Vigil crash or SIGKILL alike; the publisher drains the outbox in insertion
order. When the outbox is full, the policy decides which event is discarded; every discard is
counted and logged.

Beside the outbox the same file keeps, in the same transactions, what a camera needs after a crash:
the last accepted event of each incident still open (so a restart can end it) and small named
values such as how far a file was processed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class SpoolFullPolicy(StrEnum):
    """What to discard when the spool is full."""

    DROP_OLDEST = "drop_oldest"  # keep the newest events (default)
    DROP_NEWEST = "drop_newest"  # keep what is already spooled; refuse new events


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled item: ``kind`` is an event's kind (``object``, ``clip``, ``zone``, ...) or
    ``status``; ``payload`` the JSON document; ``item_id`` the id Redis de-duplicates on."""

    seq: int
    kind: str
    item_id: str
    camera_id: str
    payload: str
    snapshot_jpeg: bytes | None


@dataclass(frozen=True, slots=True)
class SpoolItem:
    """One item to append (``SpoolRecord`` without its sequence number)."""

    kind: str
    item_id: str
    camera_id: str
    payload: str
    snapshot_jpeg: bytes | None = None


class Spool:
    """The outbox of one camera. Thread-safe; one process may own a given file at a time."""

    def __init__(self, path: Path, max_items: int, policy: SpoolFullPolicy = SpoolFullPolicy.DROP_OLDEST) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_items = max_items
        self.policy = policy
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (not power loss)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
            "item_id TEXT NOT NULL, camera_id TEXT NOT NULL, payload TEXT NOT NULL, snapshot BLOB)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS open_incidents (incident_id TEXT PRIMARY KEY, event TEXT NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def __len__(self) -> int:
        return self._count

    def put(self, kind: str, item_id: str, camera_id: str, payload: str, snapshot_jpeg: bytes | None = None) -> int:
        """Append one item. Returns how many items the full-spool policy discarded (0 normally)."""
        return self.put_many([SpoolItem(kind, item_id, camera_id, payload, snapshot_jpeg)])

    def put_many(
        self,
        items: Iterable[SpoolItem],
        incidents: Mapping[str, str | None] | None = None,
        state: Mapping[str, str] | None = None,
    ) -> int:
        """Append ``items``, record ``incidents`` (incident id -> its last accepted event, or None:
        ended) and set ``state`` values, all in one transaction: a crash keeps all or none of them.
        Returns how many items the full-spool policy discarded (0 normally)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                discarded = sum(self._append(item) for item in items)
                for incident_id, event in (incidents or {}).items():
                    if event is None:
                        self._db.execute("DELETE FROM open_incidents WHERE incident_id = ?", (incident_id,))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO open_incidents VALUES (?, ?)", (incident_id, event))
                for key, value in (state or {}).items():
                    self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite already rolled back after some errors (disk full)
                    self._db.execute("ROLLBACK")
                self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
                raise
            return discarded

    def _append(self, item: SpoolItem) -> int:
        discarded = 0
        if self._count >= self.max_items:
            if self.policy is SpoolFullPolicy.DROP_NEWEST:
                return 1
            discarded = self._db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (self._count - self.max_items + 1,),
            ).rowcount
            self._count -= discarded
        self._db.execute(
            "INSERT INTO outbox (kind, item_id, camera_id, payload, snapshot) VALUES (?, ?, ?, ?, ?)",
            (item.kind, item.item_id, item.camera_id, item.payload, item.snapshot_jpeg),
        )
        self._count += 1
        return discarded

    def open_incidents(self) -> list[str]:
        """The last accepted event (JSON) of every incident recorded as open, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT event FROM open_incidents ORDER BY rowid").fetchall()
        return [str(r[0]) for r in rows]

    def state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def peek(self, limit: int, after_seq: int = 0) -> list[SpoolRecord]:
        """The oldest ``limit`` items after ``after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, item_id, camera_id, payload, snapshot FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    @staticmethod
    def read(path: Path) -> list[SpoolRecord]:
        """Every item waiting in the outbox file ``path``, oldest first, read without taking ownership:
        safe while a running (or killed) Vigil owns the file. An outbox not created yet is empty."""
        if not path.exists():
            return []
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT seq, kind, item_id, camera_id, payload, snapshot FROM outbox ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, not yet initialised
                return []
            raise
        finally:
            db.close()
        return [_record(r) for r in rows]

    def remove_through(self, seq: int) -> None:
        """Delete every item up to and including ``seq`` (they reached Redis)."""
        with self._lock:
            removed = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount
            self._count -= removed

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple[Any, ...]) -> SpoolRecord:
    return SpoolRecord(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), row[5])
