"""Publish stage: events and camera status to Redis, through a durable outbox.

``publish()`` only appends to the camera's on-disk spool (``pipeline.events.spool``) and wakes a sender
thread; the sender drains the spool in order. Each item is written by one Lua script, atomically:
``SET vigil:seen:<event_id> NX EX <ttl>`` and, only if that succeeded, ``XADD vigil:events``,
``XADD vigil:events:<camera_id>`` (field ``event``, approximate MAXLEN), the snapshot (``SET ...
EX``) and ``PUBLISH vigil:events:<camera_id>``. A retry after a lost reply therefore never
duplicates an event, and an event leaves the spool only once Redis has it. While Redis is down the
camera keeps running, errors are counted, and the sender retries with capped backoff.
Status changes go the same way to the stream ``vigil:status`` (field ``status``).
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path
from typing import Any

import redis

from pipeline.core.messages import Event, StatusEvent
from pipeline.core.metrics import EVENTS_PUBLISHED, EVENTS_SPOOLED, PUBLISH_ERRORS, StepClock
from pipeline.core.redact import redact
from pipeline.events.snapshots import snapshot_key
from pipeline.events.spool import Spool, SpoolFullPolicy

log = logging.getLogger(__name__)

EVENTS_STREAM = "vigil:events"
STATUS_STREAM = "vigil:status"
SEEN_PREFIX = "vigil:seen:"
BATCH = 200

# KEYS: seen-key, stream [, per-camera stream (also the Pub/Sub channel)] [, snapshot key]
# ARGV: field, payload, maxlen, seen ttl, has camera stream (1/0), snapshot ttl (0: no snapshot), snapshot
# Only real keys are passed, so an ACL user limited to ~vigil:* is enough.
_PUBLISH_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[1], ARGV[2])
local next_key = 3
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', ARGV[1], ARGV[2])
  redis.call('PUBLISH', KEYS[3], ARGV[2])
  next_key = 4
end
if ARGV[6] ~= '0' then redis.call('SET', KEYS[next_key], ARGV[7], 'EX', ARGV[6]) end
return 1
"""


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
        dedupe_ttl_s: int = 86_400,
        snapshot_ttl_s: int = 86_400,
        spool_max: int = 100_000,
        when_full: str = "drop_oldest",
        retry_cap_s: float = 5.0,
    ) -> None:
        self._client = connect(url)
        self._script = self._client.register_script(_PUBLISH_ONCE)
        self.camera_id = camera_id
        self._maxlen, self._dedupe_ttl_s, self._snapshot_ttl_s = stream_maxlen, dedupe_ttl_s, snapshot_ttl_s
        self._spool = Spool(spool_path, spool_max, SpoolFullPolicy(when_full))
        self._retry_cap_s = retry_cap_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self.published = 0
        EVENTS_SPOOLED.labels(camera_id).set(len(self._spool))
        self._thread = threading.Thread(target=self._run, name=f"publish-{camera_id}", daemon=True)
        self._thread.start()

    @property
    def spooled(self) -> int:
        """Items accepted and not yet confirmed by Redis."""
        return len(self._spool)

    def publish(self, events: list[Event], snapshots: dict[str, bytes] | None = None) -> None:
        """Accept events (durably, on disk) for delivery; ``snapshots`` maps event ids to JPEGs."""
        for ev in events:
            jpeg = (snapshots or {}).get(ev.event_id)
            self._put(ev.kind, ev.event_id, ev.model_dump_json(), jpeg)
        if events:
            self._wake.set()

    def publish_status(self, status: StatusEvent) -> None:
        self._put("status", status.event_id, status.model_dump_json(), None)
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (True) or ``timeout_s`` passes (False)."""
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout_s) and len(self._spool) == 0

    def close(self, flush_timeout_s: float = 5.0) -> None:
        """Deliver what Redis takes within ``flush_timeout_s``; the rest stays spooled for next time."""
        self.flush(flush_timeout_s)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=flush_timeout_s + 5)
        self._spool.close()
        self._client.close()

    def _put(self, kind: str, item_id: str, payload: str, jpeg: bytes | None) -> None:
        discarded = self._spool.put(kind, item_id, self.camera_id, payload, jpeg)
        if discarded:
            PUBLISH_ERRORS.labels("spool_full").inc(discarded)
            log.error(
                "camera %s: event spool full (%d items): discarded %d (%s)",
                self.camera_id,
                self._spool.max_items,
                discarded,
                self._spool.policy.value,
            )
        EVENTS_SPOOLED.labels(self.camera_id).set(len(self._spool))

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
                        len(self._spool),
                    )
                self._stop.wait(min(self._retry_cap_s, 0.1 * 2 ** min(failures, 10)) * random.uniform(0.5, 1))
            if self._stop.is_set():
                return

    def _send_batch(self) -> bool:
        """Send the oldest spooled items. True if there may be more."""
        batch = self._spool.peek(BATCH)
        if not batch:
            return False
        pipe = self._client.pipeline(transaction=False)
        for rec in batch:
            seen = f"{SEEN_PREFIX}{rec.item_id}"
            if rec.kind == "status":
                keys = [seen, STATUS_STREAM]
                args: list[Any] = ["status", rec.payload, self._maxlen, self._dedupe_ttl_s, 0, 0, b""]
            else:
                keys = [seen, EVENTS_STREAM, camera_stream(rec.camera_id)]
                snap_ttl = 0
                if rec.snapshot_jpeg:
                    keys.append(snapshot_key(rec.item_id))
                    snap_ttl = self._snapshot_ttl_s
                args = ["event", rec.payload, self._maxlen, self._dedupe_ttl_s, 1, snap_ttl, rec.snapshot_jpeg or b""]
            self._script(keys=keys, args=args, client=pipe)
        pipe.execute()
        self._spool.remove_through(batch[-1].seq)
        for rec in batch:
            if rec.kind != "status":
                EVENTS_PUBLISHED.labels(rec.camera_id, rec.kind).inc()
                self.published += 1
        EVENTS_SPOOLED.labels(self.camera_id).set(len(self._spool))
        return len(batch) == BATCH
