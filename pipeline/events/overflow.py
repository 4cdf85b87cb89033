"""Where a camera's events wait while its outbox cannot be written (disk full, over quota, I/O error).

The publisher puts events here instead of the on-disk outbox when a write to it fails, and keeps
putting them here, behind those, until the sender has delivered them all: the sender drains the
outbox first and this after it, so Redis still gets every camera's events in order. Held in memory,
they do not survive a crash; at most ``max_items`` wait, and the outbox's full policy decides which
go beyond that (counted like the outbox's discards).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from pipeline.events.spool import SpoolFullPolicy, SpoolItem, SpoolRecord

MAX_ITEMS = 1000


class Overflow:
    """A bounded, ordered, in-memory stand-in for the outbox (``put`` / ``peek`` / ``remove_through``
    as ``Spool`` has them). Thread-safe."""

    def __init__(self, max_items: int = MAX_ITEMS, policy: SpoolFullPolicy = SpoolFullPolicy.DROP_OLDEST) -> None:
        self.max_items = max_items
        self.policy = policy
        self._lock = threading.Lock()
        self._items: deque[SpoolRecord] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: Iterable[SpoolItem]) -> int:
        """Append ``items``; returns how many the full policy discarded."""
        discarded = 0
        with self._lock:
            for it in items:
                if len(self._items) >= self.max_items:
                    discarded += 1
                    if self.policy is SpoolFullPolicy.DROP_NEWEST:
                        continue
                    self._items.popleft()
                self._seq += 1
                self._items.append(
                    SpoolRecord(self._seq, it.kind, it.item_id, it.camera_id, it.payload, it.snapshot_jpeg)
                )
        return discarded

    def peek(self, limit: int) -> list[SpoolRecord]:
        """The oldest ``limit`` items, oldest first."""
        with self._lock:
            return [self._items[i] for i in range(min(limit, len(self._items)))]

    def remove_through(self, seq: int) -> None:
        """Forget every item up to and including ``seq`` (Redis has them)."""
        with self._lock:
            while self._items and self._items[0].seq <= seq:
                self._items.popleft()
