"""Retries that never duplicate: the outbox's retry horizon, the de-duplication keys' lifetime, and
the check that covers a retry coming later than that.

A batch the sender handed to Redis without a confirmation coming back (a lost reply, a timeout, a
crash between Redis's confirmation and the outbox forgetting the batch) may already be in Redis.
The sender retries it within :data:`RETRY_HORIZON_S` of its first attempt while Redis answers, and
each event's de-duplication key ``vigil:seen:<event_id>`` makes such a retry write nothing twice; so
the key lives the horizon plus the time an attempt may take to reach Redis (:func:`dedupe_ttl_s`),
not a day. A retry later than the horizon (a long outage, or the first batch of a publisher opening
an outbox another process left) cannot rely on the key: the sender first reads the newest entries of
the streams the batch goes to (:func:`already_in_redis`) and sends only what is not there. A camera's
stream has one writer, which drains its outbox in order, so a batch that reached Redis is at its
end, where the check looks.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import redis

RETRY_HORIZON_S = 600.0
# Status records of every camera share one stream: a check reads this many entries beyond the batch.
STATUS_SCAN = 1000


def dedupe_key_ttl_s(configured_s: int | None, socket_timeout_s: float, horizon_s: float = RETRY_HORIZON_S) -> int:
    """Seconds a de-duplication key lives: ``redis.dedupe_ttl_s`` where set, never less than the
    retry horizon plus two socket timeouts (the first attempt may run in Redis up to one timeout after
    it was sent, and a retry up to one after the sender made it)."""
    floor = math.ceil(horizon_s + 2 * socket_timeout_s)
    return floor if configured_s is None else max(configured_s, floor)


class Outgoing(Protocol):
    """An item the sender hands to Redis (a spooled record, or one held in memory)."""

    @property
    def kind(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def camera_id(self) -> str: ...


class InDoubt:
    """When the items at the head of the outbox may already be in Redis without the sender knowing.

    ``needs_check()`` is true for the first batch after the outbox was opened (another process may
    have sent it) and for a retry later than the horizon after the first unconfirmed attempt."""

    def __init__(self, horizon_s: float = RETRY_HORIZON_S) -> None:
        self._horizon_s = horizon_s
        self._first_attempt: float | None = None
        self._opened = True

    def needs_check(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        late = self._first_attempt is not None and now - self._first_attempt > self._horizon_s
        return self._opened or late

    def checked(self) -> None:
        """The head was compared with Redis: what goes out now is a first attempt."""
        self._opened = False
        self._first_attempt = None

    def attempting(self, now: float | None = None) -> None:
        if self._first_attempt is None:
            self._first_attempt = time.monotonic() if now is None else now

    def confirmed(self) -> None:
        self._opened = False
        self._first_attempt = None


def already_in_redis(client: redis.Redis, items: Sequence[Outgoing], event_stream: str, status_stream: str) -> set[str]:
    """Ids of ``items`` already at the end of the streams they go to: events in their camera's stream
    ``event_stream`` (its newest ``len`` entries), status records in ``status_stream``."""
    events = sum(1 for it in items if it.kind != "status")
    statuses = len(items) - events
    pipe = client.pipeline(transaction=False)
    if events:
        pipe.xrevrange(event_stream, count=events)
    if statuses:
        pipe.xrevrange(status_stream, count=statuses + STATUS_SCAN)
    found: set[str] = set()
    replies: Any = pipe.execute()
    for entries in replies:
        for _entry_id, fields in entries:
            for doc in fields.values():
                found.add(_event_id(doc))
    wanted = {it.item_id for it in items}
    return found & wanted


def _event_id(doc: bytes) -> str:
    try:
        value = json.loads(doc).get("event_id")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
