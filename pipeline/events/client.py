"""A small Python client for Vigil's events in Redis.

    from pipeline.events.client import EventClient

    client = EventClient("redis://127.0.0.1:6379/0")
    for ev in client.tail(camera="lobby"):                    # live, from now on
        print(ev.label)
    for ev in client.replay(since=datetime(2026, 11, 22, tzinfo=UTC), label="fall"):
        print(ev.event_id)
    for delivery in client.consume("alerts", "worker-1"):     # each event once per group, with acks
        handle(delivery.event)
        delivery.ack()
    for match in client.search("a person lying on the floor", "minilm-384", count=5):  # by meaning
        print(f"{match.score:.2f} {match.event.event_id}")

``consume`` first re-delivers this consumer's own unacknowledged events (after a crash or
restart), then new ones: no gaps, and repeats only for events that were never acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
import redis

from pipeline.core.messages import Event
from pipeline.events.publisher import BATCH, EVENTS_STREAM, camera_stream, connect, read_new_events
from pipeline.events.search import EmbeddingIndex, SearchHit
from pipeline.events.snapshots import snapshot_key

if TYPE_CHECKING:
    from pipeline.events.text_encoders import TextEncoder

# Entries of a camera's stream read back from the time its event's embedding was stored: the event
# went in just before, at most a publisher's batch earlier. A first short look finds nearly all.
LOOKBACK = (8, BATCH + 8)


@dataclass(frozen=True)
class Delivery:
    """An event read through a consumer group; call ``ack()`` once it is handled."""

    event: Event
    entry_id: bytes
    stream: str
    group: str
    _client: redis.Redis

    def ack(self) -> None:
        self._client.xack(self.stream, self.group, self.entry_id)


@dataclass(frozen=True)
class Match:
    """An event a search found; ``score``: the cosine similarity of its embedding to the query."""

    event: Event
    score: float


class NothingToSearch(LookupError):
    """Redis holds no event embeddings (of the space asked for)."""


class EventClient:
    """Reads Vigil events from Redis (``vigil:events`` or ``vigil:events:<camera>``)."""

    def __init__(self, url: str) -> None:
        self._client = connect(url)

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def stream_for(camera: str | None) -> str:
        return camera_stream(camera) if camera else EVENTS_STREAM

    def tail(self, camera: str | None = None, from_start: bool = False, block_ms: int = 1000) -> Iterator[Event]:
        """Every event published from this call on (forever); ``from_start`` begins at the oldest
        retained one instead."""
        stream = self.stream_for(camera)
        last_id: bytes | str = "0-0"
        if not from_start:  # the newest entry now, not XREAD's "$": that misses entries between reads
            newest: Any = self._client.xrevrange(stream, count=1)
            last_id = newest[0][0] if newest else "0-0"
        return self._follow(stream, last_id, block_ms)

    def _follow(self, stream: str, last_id: bytes | str, block_ms: int) -> Iterator[Event]:
        while True:
            for entry_id, doc in read_new_events(self._client, stream, last_id, block_ms):
                last_id = entry_id
                ev = Event.read(doc)
                if ev is not None:  # None: not an event at all (kinds this version does not know pass)
                    yield ev

    def replay(
        self,
        since: datetime,
        camera: str | None = None,
        label: str | None = None,
        until: datetime | None = None,
        batch: int = 500,
    ) -> Iterator[Event]:
        """Retained events captured at or after ``since`` (and before ``until``), in the order they
        reached Redis: a camera's in the order its rules raised them (an ``end`` carries the time
        of its last observation, which can be earlier than the event before it).

        Stream ids are insertion times, which are never earlier than capture times, so the scan
        starts at ``since`` and filters on the event's own capture time.
        """
        stream = self.stream_for(camera)
        since_s, until_s = since.timestamp(), (until.timestamp() if until else None)
        start: bytes | str = f"{int(since_s * 1000)}-0"
        while True:
            entries: Any = self._client.xrange(stream, min=start, max="+", count=batch)
            for _entry_id, fields in entries:
                ev = Event.read(fields[b"event"])
                if ev is None:
                    continue
                in_range = ev.captured_at >= since_s and (until_s is None or ev.captured_at < until_s)
                if in_range and (label is None or ev.label == label):
                    yield ev
            if len(entries) < batch:
                return
            start = b"(" + entries[-1][0]

    def consume(
        self, group: str, consumer: str, camera: str | None = None, block_ms: int = 1000, count: int = 100
    ) -> Iterator[Delivery]:
        """Read through consumer group ``group`` (created at the stream's start if missing)."""
        stream = self.stream_for(camera)
        try:
            self._client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        pending_id: bytes | str = "0"  # first this consumer's own unacknowledged entries
        while True:
            reply: Any = self._client.xreadgroup(
                group, consumer, {stream: pending_id if pending_id else ">"}, count=count, block=block_ms
            )
            entries = [e for _s, es in reply or [] for e in es]
            if pending_id and not entries:
                pending_id = ""  # backlog done: switch to new entries
                continue
            for entry_id, fields in entries:
                if pending_id:
                    pending_id = entry_id
                if not fields:  # a pending entry trimmed from the stream comes back empty
                    continue
                ev = Event.read(fields[b"event"])
                if ev is None:  # not an event at all: nothing to hand on
                    self._client.xack(stream, group, entry_id)
                    continue
                yield Delivery(ev, entry_id, stream, group, self._client)

    def search(
        self,
        query: str | npt.ArrayLike,
        space: str | None = None,
        *,
        encode: TextEncoder | None = None,
        camera: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        count: int = 10,
        window: int | None = None,
    ) -> list[Match]:
        """The retained events closest in meaning to ``query`` (a text, or a vector in ``space``),
        best first: ``pipeline.events.search.EmbeddingIndex.search`` over the ``window`` most recent
        embeddings (None: all stored), each event read back from its camera's stream (one trimmed
        from it is left out). ``space`` None: the one space stored. A text is embedded with
        ``encode``, else with ``text_encoder(space, None)`` (which covers ``minilm-384``).
        Raises NothingToSearch when Redis holds no embeddings of the space, ValueError when several
        spaces are stored and none is given."""
        index = EmbeddingIndex(self._client)
        space = space or _only_space(index.spaces())
        if isinstance(query, str):
            if encode is None:
                from pipeline.events.text_encoders import text_encoder

                encode = text_encoder(space, None)
            query = encode([query])[0]
        hits = index.search(query, space, camera, since.timestamp() if since else None, kinds, count, window)
        if not hits and space not in (stored := index.spaces()):
            raise NothingToSearch(f"no event embeddings in space {space} in Redis ({_listed(stored)})")
        return [Match(ev, hit.score) for hit, ev in zip(hits, self._read_back(hits), strict=True) if ev is not None]

    def spaces(self) -> dict[str, int]:
        """The spaces event embeddings are stored in, with how many each."""
        return EmbeddingIndex(self._client).spaces()

    def _read_back(self, hits: list[SearchHit]) -> list[Event | None]:
        """Each hit's event from its camera's stream, looking back from when its embedding was stored."""
        found: dict[str, Event] = {}
        for depth in LOOKBACK:
            missing = [h for h in hits if h.event_id not in found]
            if not missing:
                break
            pipe = self._client.pipeline(transaction=False)
            for hit in missing:
                pipe.xrevrange(camera_stream(hit.camera), max=str(hit.written_ms), count=depth)
            replies: Any = pipe.execute()
            for hit, entries in zip(missing, replies, strict=True):
                ev = _entry_event(entries, hit.event_id)
                if ev is not None:
                    found[hit.event_id] = ev
        return [found.get(h.event_id) for h in hits]

    def snapshot(self, event_id: str) -> bytes | None:
        """The JPEG of a start event stored in Redis, or None (expired, stored in a directory, or none)."""
        data: Any = self._client.get(snapshot_key(event_id))
        return bytes(data) if data is not None else None


def _entry_event(entries: list[tuple[bytes, dict[bytes, bytes]]], event_id: str) -> Event | None:
    wanted = event_id.encode()
    for _entry_id, fields in entries:
        doc = fields.get(b"event")
        if doc is not None and wanted in doc and (ev := Event.read(doc)) is not None and ev.event_id == event_id:
            return ev
    return None


def _listed(stored: dict[str, int]) -> str:
    if not stored:
        return "none stored: the pipeline stores them for events it gives an embedding"
    return "stored: " + ", ".join(f"{name} ({n})" for name, n in sorted(stored.items()))


def _only_space(stored: dict[str, int]) -> str:
    if not stored:
        raise NothingToSearch(f"no event embeddings in Redis ({_listed(stored)})")
    if len(stored) > 1:
        raise ValueError(f"embeddings of several spaces are stored; give one ({_listed(stored)})")
    return next(iter(stored))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2026-11-22T10:00:00Z``, ``2026-11-22 10:00``, or relative: ``90s``, ``15m``, ``2h``, ``1d``."""
    now = now or datetime.now(UTC)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO-8601 like 2026-11-22T10:00:00Z, or 15m, 2h, 1d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
