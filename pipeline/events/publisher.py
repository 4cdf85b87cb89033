"""Publish stage: events and camera status to Redis, through a durable outbox.

``publish()`` only appends to the camera's on-disk spool (``pipeline.events.spool``) and wakes a sender
thread; the sender drains the spool in order. Each item is written by one Lua script, atomically:
``SET vigil:seen:<event_id> NX EX <ttl>`` and, only if that succeeded, ``XADD vigil:events``,
``XADD vigil:events:<camera_id>`` (field ``event``, approximate MAXLEN), the snapshot (``SET ...
EX``) and ``PUBLISH vigil:events:<camera_id>``. A retry after a lost reply therefore never
duplicates an event (``pipeline.events.redelivery``: how long the key lives, and the check that
covers a retry later than that), and an event leaves the spool only once Redis has it. While Redis
is down the camera keeps running, errors are counted, and the sender retries with capped backoff.
Status changes go the same way to the stream ``vigil:status`` (field ``status``).

The same script indexes the de-duplication key and the snapshot for ``redis.memory_budget_mb``
(``pipeline.events.budget``); after each batch the sender enforces the budget when it is exceeded
and watches its streams' trimming (``pipeline.events.trim_watch``). It writes the embeddings of
the events Redis confirmed after them, best-effort, apart from the events' own script
(``pipeline.events.embedding_writer``). When the spool cannot be written (disk full), events wait
in memory instead (``pipeline.events.overflow``), counted and logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis

from pipeline.core.config import RedisConfig
from pipeline.core.config.events import SearchConfig
from pipeline.core.messages import Event, StatusEvent
from pipeline.core.metrics import EVENTS_PUBLISHED, EVENTS_SPOOLED, PUBLISH_ERRORS, StepClock
from pipeline.core.redact import redact
from pipeline.events.budget import BYTES_KEY, DEDUPE_KEY, INDEXES, SNAPSHOT, TRACK_LUA, RedisBudget, key_bytes
from pipeline.events.disk import DISK_ERRORS, SPOOL, WriteFailures
from pipeline.events.embedding_writer import EmbeddingWriter
from pipeline.events.embeddings import EventEmbedding
from pipeline.events.overflow import Overflow
from pipeline.events.redelivery import InDoubt, already_in_redis, dedupe_key_ttl_s
from pipeline.events.search import EmbeddingIndex
from pipeline.events.snapshots import snapshot_key
from pipeline.events.spool import Spool, SpoolFullPolicy, SpoolItem, SpoolRecord
from pipeline.events.trim_watch import TrimWatch

log = logging.getLogger(__name__)

EVENTS_STREAM = "vigil:events"
STATUS_STREAM = "vigil:status"
SEEN_PREFIX = "vigil:seen:"
BATCH = 200

# KEYS: seen-key, dedupe index, snapshot index, budget bytes, stream [, per-camera stream (also the
# Pub/Sub channel)] [, snapshot key]
# ARGV: field, payload, maxlen, seen ttl, has camera stream (1/0), snapshot ttl (0: no snapshot), snapshot,
# seen-key bytes, snapshot bytes (pipeline.events.budget.key_bytes)
# Returns {1 written / 0 already there, bytes of Vigil's tracked keys}.
# Only real keys are passed, so an ACL user limited to ~vigil:* is enough.
_PUBLISH_ONCE = (
    "local BYTES_KEY = KEYS[4]\n"
    + TRACK_LUA
    + """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return {0, tracked_total()} end
track(KEYS[2], 'dedupe_key', KEYS[1], ARGV[8], ARGV[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*', ARGV[1], ARGV[2])
local next_key = 6
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', ARGV[1], ARGV[2])
  redis.call('PUBLISH', KEYS[6], ARGV[2])
  next_key = 7
end
if ARGV[6] ~= '0' then
  redis.call('SET', KEYS[next_key], ARGV[7], 'EX', ARGV[6])
  track(KEYS[3], 'snapshot', KEYS[next_key], ARGV[9], ARGV[6])
end
return {1, tracked_total()}
"""
)


def camera_stream(camera_id: str) -> str:
    """Per-camera stream name; also the Pub/Sub channel name."""
    return f"{EVENTS_STREAM}:{camera_id}"


def connect(url: str, connect_timeout_s: float = 3.0) -> redis.Redis:
    """A client for ``url`` (redis://, rediss:// for TLS, unix://); passwords/ACL users come from the URL."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=max(connect_timeout_s, 5.0),
        health_check_interval=30,
        decode_responses=False,
    )


def check_connection(url: str, connect_timeout_s: float = 3.0) -> None:
    """Raise ConnectionError with a redacted, one-line reason when Redis cannot be used."""
    client = connect(url, connect_timeout_s)
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise ConnectionError(f"Redis at {redact(url)} refused the credentials: {exc}") from None
    except redis.RedisError as exc:
        raise ConnectionError(f"cannot reach Redis at {redact(url)}: {redact(str(exc))}") from None
    finally:
        client.close()


def read_new_events(
    client: redis.Redis, stream: str, last_id: bytes | str, block_ms: int, count: int = 100
) -> list[tuple[bytes, bytes]]:
    """XREAD ``stream`` after ``last_id`` (``$``: only new ones), waiting up to ``block_ms``.

    Returns ``[(entry_id, event_json)]`` in stream order; pass the last entry id back in to go on.
    """
    reply: Any = client.xread({stream: last_id}, count=count, block=block_ms)
    return [(entry_id, fields[b"event"]) for _name, entries in reply or [] for entry_id, fields in entries]


class EventPublisher:
    """Durable publisher of one camera's events and status changes."""

    def __init__(
        self,
        url: str,
        camera_id: str,
        spool_path: Path,
        *,
        stream_maxlen: int = 100_000,
        dedupe_ttl_s: int | None = None,
        snapshot_ttl_s: int = 86_400,
        memory_budget_mb: int = RedisConfig.model_fields["memory_budget_mb"].default,
        spool_max: int = 100_000,
        when_full: str = "drop_oldest",
        retry_cap_s: float = 5.0,
        count_spooled: bool = True,
        embedding_ttl_s: int = SearchConfig.model_fields["ttl_s"].default,
        max_embeddings: int = SearchConfig.model_fields["max_embeddings"].default,
    ) -> None:
        """``count_spooled``: keep ``vigil_events_spooled`` for ``camera_id`` (off for the driver's
        own status records, which are no camera's). ``dedupe_ttl_s`` None: the retry horizon's
        (``pipeline.events.redelivery``); ``memory_budget_mb``: ``redis.memory_budget_mb``;
        ``embedding_ttl_s``, ``max_embeddings``: ``events.search``."""
        self._client = connect(url)
        self._script = self._client.register_script(_PUBLISH_ONCE)
        self.camera_id = camera_id
        socket_timeout_s = float(self._client.connection_pool.connection_kwargs["socket_timeout"])
        protect_s = dedupe_key_ttl_s(None, socket_timeout_s)  # no retry relies on a key older than this
        self._maxlen, self._snapshot_ttl_s = stream_maxlen, snapshot_ttl_s
        self._dedupe_ttl_s = dedupe_key_ttl_s(dedupe_ttl_s, socket_timeout_s)
        self._batch = min(BATCH, stream_maxlen)  # a batch in doubt stays within the stream it is checked against
        self._doubt = InDoubt()
        self._budget = RedisBudget(self._client, memory_budget_mb * 2**20, protect_s)
        index = EmbeddingIndex(self._client, ttl_s=embedding_ttl_s, max_embeddings=max_embeddings, budget=self._budget)
        self._embeddings = EmbeddingWriter(index, camera_id)
        self._trim = TrimWatch(self._client, [EVENTS_STREAM, camera_stream(camera_id), STATUS_STREAM], stream_maxlen)
        self._spool = Spool(spool_path, spool_max, SpoolFullPolicy(when_full))
        self._overflow = Overflow(policy=SpoolFullPolicy(when_full))
        self._disk = WriteFailures(SPOOL, camera_id)
        self._unsaved: tuple[dict[str, str | None], dict[str, str]] = ({}, {})
        self._undeleted = (0, 0)  # spooled items Redis has that the spool could not delete: (through seq, how many)
        self._store_lock = threading.Lock()
        self._retry_cap_s = retry_cap_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self.published = 0
        self._count_spooled = count_spooled
        self._gauge_spooled()
        self._thread = threading.Thread(target=self._run, name=f"publish-{camera_id}", daemon=True)
        self._thread.start()

    @property
    def spooled(self) -> int:
        """Items accepted and not yet confirmed by Redis (on disk, or in memory while the disk refuses them)."""
        return len(self._spool) - self._undeleted[1] + len(self._overflow)

    def publish(
        self,
        events: list[Event],
        snapshots: dict[str, bytes] | None = None,
        state: dict[str, str] | None = None,
        embeddings: Mapping[str, EventEmbedding] | None = None,
        revised: Sequence[tuple[Event, EventEmbedding]] = (),
    ) -> None:
        """Accept events (durably, on disk) for delivery; ``snapshots`` maps event ids to JPEGs. In the
        same write, the incidents they leave open are recorded (``open_incidents``) and ``state``
        values are set (``state``). ``embeddings`` maps event ids to what makes them searchable
        (``pipeline.events.search``): stored once the event is in Redis, best-effort, never
        delaying or failing the event. ``revised``: new embeddings for events accepted earlier (an
        incident's start event, searched by what its incident showed so far)."""
        if embeddings:  # before the events: the sender may deliver them at once
            self._embeddings.accept(events, embeddings)
        for ev, emb in revised:
            self._embeddings.revise(ev, emb)
        items, incidents = [], {}
        for ev in events:
            doc = ev.model_dump_json()
            items.append(SpoolItem(ev.kind, ev.event_id, self.camera_id, doc, (snapshots or {}).get(ev.event_id)))
            if ev.phase in ("start", "update", "end"):  # an instant event leaves nothing open
                incidents[ev.incident_id] = None if ev.phase == "end" else doc
        if items or state:
            self._accept(items, incidents, state)
        if events:
            self._wake.set()

    def publish_status(self, status: StatusEvent) -> None:
        self._accept([SpoolItem("status", status.event_id, self.camera_id, status.model_dump_json())])
        self._wake.set()

    def open_incidents(self) -> list[Event]:
        """The last accepted event of every incident this camera's outbox holds as open: after a crash,
        the incidents nobody ended."""
        return [ev for ev in map(Event.read, self._spool.open_incidents()) if ev is not None]

    def state(self, key: str) -> str | None:
        """A value set with ``publish(..., state=...)``, kept across crashes."""
        return self._spool.state(key)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while True:  # the sender may go idle between items accepted after this call began: wait again
            self._idle.clear()
            self._wake.set()
            if not self._idle.wait(max(0.0, deadline - time.monotonic())):
                return False
            if self.spooled == 0:
                return True

    def close(self, flush_timeout_s: float = 5.0) -> None:
        """Deliver what Redis takes within ``flush_timeout_s``; the rest stays spooled for next time."""
        self.flush(flush_timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=flush_timeout_s + 5)
        self._spool.close()
        self._client.close()

    def _accept(
        self,
        items: list[SpoolItem],
        incidents: dict[str, str | None] | None = None,
        state: dict[str, str] | None = None,
    ) -> None:
        discarded = self._store(items, incidents or {}, state or {})
        if discarded:
            PUBLISH_ERRORS.labels("spool_full").inc(discarded)
            log.error(
                "camera %s: event spool full (%d items): discarded %d (%s)",
                self.camera_id,
                self._spool.max_items,
                discarded,
                self._spool.policy.value,
            )
        self._gauge_spooled()

    def _store(self, items: list[SpoolItem], incidents: dict[str, str | None], state: dict[str, str]) -> int:
        """Into the spool; into memory behind what already waits there, or when the spool cannot be
        written. Incidents and state the spool could not take go with the next write that succeeds."""
        with self._store_lock:
            incidents, state = {**self._unsaved[0], **incidents}, {**self._unsaved[1], **state}
            if not len(self._overflow):
                try:
                    discarded = self._spool.put_many(items, incidents, state)
                except DISK_ERRORS as exc:
                    self._disk.failed(
                        exc, f"events wait in memory (at most {self._overflow.max_items}) and go to Redis from there"
                    )
                else:
                    self._disk.succeeded()
                    self._unsaved = ({}, {})
                    return discarded
            self._unsaved = (incidents, state)
            return self._overflow.put(items)

    def _gauge_spooled(self) -> None:
        if self._count_spooled:
            EVENTS_SPOOLED.labels(self.camera_id).set(self.spooled)

    def _run(self) -> None:
        failures = 0
        clock = StepClock()  # this sender thread's CPU: vigil_camera_cpu_seconds{step="redis"}
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                while self._send_batch():
                    pass
                clock.lap("redis")
                failures = 0
                self._idle.set()
            except redis.RedisError as exc:
                failures += 1
                PUBLISH_ERRORS.labels(type(exc).__name__).inc()
                if failures == 1 or failures % 20 == 0:
                    log.warning(
                        "camera %s: Redis unavailable (%s); %d events spooled",
                        self.camera_id,
                        redact(str(exc)),
                        self.spooled,
                    )
                self._stop.wait(min(self._retry_cap_s, 0.1 * 2 ** min(failures, 10)) * random.uniform(0.5, 1))
            except DISK_ERRORS as exc:  # the spool cannot be read: tried again
                failures += 1
                self._disk.failed(exc, "events wait until it can be read")
                self._stop.wait(min(self._retry_cap_s, 0.1 * 2 ** min(failures, 10)) * random.uniform(0.5, 1))
            if self._stop.is_set():
                return

    def _send_batch(self) -> bool:
        """Send the oldest spooled items (those held in memory once the spool is empty). True if there
        may be more."""
        source: Spool | Overflow = self._spool
        batch = self._spool.peek(self._batch, after_seq=self._undeleted[0])
        if not batch:
            source, batch = self._overflow, self._overflow.peek(self._batch)
        if not batch:
            return False
        sending = batch
        if self._doubt.needs_check():  # a retry the de-duplication keys may no longer cover
            found = already_in_redis(self._client, batch, camera_stream(self.camera_id), STATUS_STREAM)
            sending = [rec for rec in batch if rec.item_id not in found]
            self._doubt.checked()
        tracked = 0
        if sending:
            self._doubt.attempting()
            pipe = self._client.pipeline(transaction=False)
            for rec in sending:
                keys, args = self._script_call(rec)
                self._script(keys=keys, args=args, client=pipe)
            tracked = max(int(reply[1]) for reply in pipe.execute())
        self._forget(source, batch)
        self._doubt.confirmed()
        self._embeddings.write([rec.item_id for rec in batch if rec.kind != "status"])
        for rec in batch:
            if rec.kind != "status":
                EVENTS_PUBLISHED.labels(rec.camera_id, rec.kind).inc()
                self.published += 1
        self._gauge_spooled()
        if sending:
            self._budget.after_write(tracked)
            self._trim.maybe_check()
        return len(batch) == self._batch

    def _forget(self, source: Spool | Overflow, batch: list[SpoolRecord]) -> None:
        """Remove a delivered batch from where it waited. A spool that cannot delete it (disk full) is
        read past it from now on, and asked again with the next batch."""
        try:
            source.remove_through(batch[-1].seq)
        except DISK_ERRORS as exc:
            self._disk.failed(exc, "delivered events stay in it until it can delete them")
            self._undeleted = (batch[-1].seq, self._undeleted[1] + len(batch))
        else:
            if source is self._spool:
                self._undeleted = (0, 0)

    def _script_call(self, rec: SpoolRecord) -> tuple[list[str], list[Any]]:
        """The publish script's keys and arguments for one item."""
        seen = f"{SEEN_PREFIX}{rec.item_id}"
        keys = [seen, INDEXES[DEDUPE_KEY], INDEXES[SNAPSHOT], BYTES_KEY]
        if rec.kind == "status":
            keys.append(STATUS_STREAM)
            return keys, ["status", rec.payload, self._maxlen, self._dedupe_ttl_s, 0, 0, b"", key_bytes(seen, 1), 0]
        keys += [EVENTS_STREAM, camera_stream(rec.camera_id)]
        snap_ttl, snap_bytes = 0, 0
        if rec.snapshot_jpeg:
            keys.append(snapshot_key(rec.item_id))
            snap_ttl, snap_bytes = self._snapshot_ttl_s, key_bytes(keys[-1], len(rec.snapshot_jpeg))
        jpeg = rec.snapshot_jpeg or b""
        return keys, [
            "event",
            rec.payload,
            self._maxlen,
            self._dedupe_ttl_s,
            1,
            snap_ttl,
            jpeg,
            key_bytes(seen, 1),
            snap_bytes,
        ]
