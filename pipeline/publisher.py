"""Publish stage: events and camera status to Redis.

Each event is written with XADD to ``vigil:events`` and ``vigil:events:<camera_id>`` (field
``event`` holds the JSON, approximate MAXLEN) and PUBLISHed on ``vigil:events:<camera_id>``.
Status changes go to the stream ``vigil:status``. A failing Redis never stops the camera: writes
are counted as errors and retried from a bounded in-memory buffer on the next publish, oldest
first; when the buffer is full the oldest events are discarded and counted (``overflow``).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import redis

from pipeline.messages import Event, StatusEvent
from pipeline.metrics import EVENTS_PENDING, EVENTS_PUBLISHED, PUBLISH_ERRORS
from pipeline.redact import redact

log = logging.getLogger(__name__)

EVENTS_STREAM = "vigil:events"
STATUS_STREAM = "vigil:status"


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


class RedisPublisher:
    """Writes one camera's events and status changes to Redis."""

    def __init__(self, url: str, camera_id: str, stream_maxlen: int, max_pending: int = 10_000) -> None:
        self._client = connect(url)
        self._camera_id = camera_id
        self._maxlen = stream_maxlen
        self._pending: deque[Event | StatusEvent] = deque()
        self._max_pending = max_pending
        self.published = 0

    def publish(self, events: list[Event]) -> int:
        """Queue ``events`` and write everything pending. Returns how many events were written."""
        for ev in events:
            self._enqueue(ev)
        return self.flush()

    def publish_status(self, status: StatusEvent) -> None:
        self._enqueue(status)
        self.flush()

    def flush(self) -> int:
        if not self._pending:
            return 0
        batch = list(self._pending)
        pipe = self._client.pipeline(transaction=False)
        for item in batch:
            self._write(pipe, item)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            PUBLISH_ERRORS.labels(type(exc).__name__).inc()
            log.warning(
                "camera %s: Redis write failed (%s); %d kept for retry",
                self._camera_id,
                redact(str(exc)),
                len(self._pending),
            )
            return 0
        for _ in batch:
            self._pending.popleft()
        written = [item for item in batch if isinstance(item, Event)]
        for ev in written:
            EVENTS_PUBLISHED.labels(ev.camera_id, ev.kind).inc()
        EVENTS_PENDING.labels(self._camera_id).set(len(self._pending))
        self.published += len(written)
        return len(written)

    def close(self) -> None:
        self.flush()
        self._client.close()

    def _enqueue(self, item: Event | StatusEvent) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            PUBLISH_ERRORS.labels("overflow").inc()
        self._pending.append(item)
        EVENTS_PENDING.labels(self._camera_id).set(len(self._pending))

    def _write(self, pipe: Any, item: Event | StatusEvent) -> None:
        data = item.model_dump_json()
        if isinstance(item, StatusEvent):
            pipe.xadd(STATUS_STREAM, {"status": data}, maxlen=self._maxlen, approximate=True)
            return
        channel = camera_stream(item.camera_id)
        pipe.xadd(EVENTS_STREAM, {"event": data}, maxlen=self._maxlen, approximate=True)
        pipe.xadd(channel, {"event": data}, maxlen=self._maxlen, approximate=True)
        pipe.publish(channel, data)
