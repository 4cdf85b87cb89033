"""The publisher's side of search: each event's embedding goes to Redis after the event, best-effort.

``EventPublisher.publish(events, ..., embeddings={event_id: EventEmbedding(vector, space)})`` packs
each embedding (``pipeline.events.search.pack``) and holds it here, in memory, while its event
waits in the outbox; once Redis confirmed a batch of events, the sender writes their embeddings in
one more round trip. The event's own write (the exactly-once script, the outbox) never sees them:
an embedding Redis refuses, or one that cannot wait any longer, is lost alone, counted in
``vigil_publish_errors_total{reason="embedding"}`` and logged once per episode. Embeddings do not
survive a crash; at most ``max_pending`` wait (the oldest go beyond that, counted alike).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import redis

from pipeline.core.messages import Event
from pipeline.core.metrics import PUBLISH_ERRORS
from pipeline.core.redact import redact
from pipeline.events.embeddings import EventEmbedding, PackedEmbedding, pack
from pipeline.events.search import EmbeddingIndex

log = logging.getLogger(__name__)

REASON = "embedding"  # like the reasons of failed event writes, its series appears with the first
MAX_PENDING = 10_000


class EmbeddingWriter:
    """One camera's embeddings on their way to the index. ``accept`` from any thread, ``write`` from
    the sender thread."""

    def __init__(self, index: EmbeddingIndex, camera_id: str, max_pending: int = MAX_PENDING) -> None:
        self._index, self.camera_id, self.max_pending = index, camera_id, max_pending
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, PackedEmbedding] = OrderedDict()
        self._revised: OrderedDict[str, PackedEmbedding] = OrderedDict()  # of events already in Redis
        self._failing = False
        self.failed = 0  # embeddings lost, in total

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def accept(self, events: Iterable[Event], embeddings: Mapping[str, EventEmbedding]) -> None:
        """Hold the embeddings of ``events`` until their events are in Redis. One that is not a
        valid embedding (ValueError) is counted and dropped; its event is unaffected."""
        if self._index.max_embeddings == 0:
            return
        packed: list[tuple[str, PackedEmbedding]] = []
        for ev in events:
            emb = embeddings.get(ev.event_id)
            if emb is None:
                continue
            p = self._pack(ev, emb)
            if p is not None:
                packed.append((ev.event_id, p))
        dropped = 0
        with self._lock:
            self._pending.update(packed)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                dropped += 1
        if dropped:
            self._lost(dropped, f"more than {self.max_pending} waited for their events to reach Redis")

    def _pack(self, ev: Event, emb: EventEmbedding) -> PackedEmbedding | None:
        """``emb`` packed for ``ev``; None (counted as lost) where it is not a valid embedding."""
        try:
            return pack(ev.event_id, ev.camera_id, ev.kind, ev.label, ev.captured_at, emb.vector, emb.space)
        except ValueError as exc:
            self._lost(1, f"event {ev.event_id}: {exc}")
            return None

    def revise(self, event: Event, embedding: EventEmbedding) -> None:
        """A new embedding for an event accepted earlier (an incident searched by what it showed so
        far): it replaces the one still waiting for its event, or the one stored, with the next write."""
        if self._index.max_embeddings == 0 or (p := self._pack(event, embedding)) is None:
            return
        with self._lock:
            if event.event_id in self._pending:
                self._pending[event.event_id] = p
                return
            self._revised[event.event_id] = p
            while len(self._revised) > self.max_pending:
                self._revised.popitem(last=False)  # an older revision: the first embedding stays

    def write(self, event_ids: Sequence[str]) -> None:
        """Write the embeddings of events Redis now has, and the revisions waiting. Never raises a
        Redis error: what fails is lost."""
        with self._lock:
            batch = [p for i in event_ids if (p := self._pending.pop(i, None)) is not None]
            revised, self._revised = list(self._revised.values()), OrderedDict()
        if revised:
            try:
                self._index.revise(revised)
            except redis.RedisError as exc:  # the embeddings stored first stay
                log.debug("camera %s: %d embedding revision(s) not written: %s", self.camera_id, len(revised), exc)
        if not batch:
            return
        try:
            written = self._index.write(batch)
        except redis.RedisError as exc:
            self._lost(len(batch), redact(str(exc)))
            return
        if written.failed:
            self._lost(written.failed, redact(str(written.error)))
            return
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            log.warning("camera %s: embeddings are stored again (%d had been lost)", self.camera_id, self.failed)

    def _lost(self, n: int, why: str) -> None:
        """Count ``n`` embeddings lost; the first loss of an episode logs one line."""
        PUBLISH_ERRORS.labels(REASON).inc(n)
        with self._lock:
            self.failed += n
            first, self._failing = not self._failing, True
        if first:
            log.error(
                "camera %s: %d event embedding(s) not stored (%s); the events themselves are delivered, "
                "search does not find them",
                self.camera_id,
                n,
                why,
            )
