"""What Vigil keeps in Redis beside its streams, held to ``redis.memory_budget_mb``.

Snapshots (``vigil:snapshot:<event_id>``), de-duplication keys (``vigil:seen:<event_id>``) and the
embeddings search reads (``vigil:emb:...``, ``pipeline.events.search``) are indexed as they are
written, by the Lua script that writes them, in the same step: a sorted set per kind
(:data:`INDEXES`) whose members carry the key, when it was written (Redis's clock, in ms, and a
sequence number for the order within a millisecond) and the bytes it costs Redis, scored by its
expiry time, and a hash of bytes per kind (:data:`BYTES_KEY`).
The budget therefore counts Vigil's own keys only and holds on a Redis shared with others; streams
are bounded by ``redis.stream_maxlen`` and are not part of it.

When the total passes the budget, the publisher that saw it removes keys oldest first: snapshots
and embeddings in the order they were written, all of them before any de-duplication key, and a
de-duplication key only once no retry of its event can still rely on it (``protect_s``: the
outbox's retry horizon, ``pipeline.events.redelivery``). Keys that already expired leave the index
on the way, uncounted; every key removed early is counted in ``vigil_redis_evicted_total{kind}``
(``RedisBudget.cap`` removes embeddings beyond their count cap the same way). Several publishers
may enforce at once: a key leaves the index exactly once (``ZREM`` decides), so nothing is removed
or counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.core.metrics import REDIS_EVICTED

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot"
DEDUPE_KEY = "dedupe_key"
EMBEDDING = "embedding"
INDEXES = {
    SNAPSHOT: "vigil:budget:snapshot",
    DEDUPE_KEY: "vigil:budget:dedupe_key",
    EMBEDDING: "vigil:budget:embedding",
}
BYTES_KEY = "vigil:budget:bytes"
CANDIDATES = 512  # index members read per kind and enforcement round (the oldest ones)
REMOVE_CHUNK = 1000  # members per call of the removal script
PRUNE_INTERVAL_S = 30.0  # expired keys leave the index at least this often, over budget or not
for _kind in INDEXES:  # the series exist from the start, at zero
    REDIS_EVICTED.labels(_kind)

# KEYS: the index, the bytes hash. ARGV: kind, members... Each member still indexed leaves the index,
# its bytes leave the total and its key is deleted; returns how many keys were still there (removed
# early) and the bytes freed. A member another publisher removed first is skipped.
_REMOVE = """
local removed, freed = 0, 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local nbytes, key = string.match(ARGV[i], '^%d+:%d+:(%d+):(.*)$')
    redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(nbytes))
    removed = removed + redis.call('DEL', key)
    freed = freed + tonumber(nbytes)
  end
end
return {removed, freed}
"""

# The Lua the publisher's script runs for each key it writes: ``track(index, kind, key, bytes, ttl_s)``.
# Needs ``now_ms`` (Redis's clock) and the bytes hash as KEYS[bytes_key_index].
TRACK_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function track(index, kind, key, nbytes, ttl_s)
  local seq = string.format('%015d', redis.call('HINCRBY', BYTES_KEY, 'seq', 1))
  redis.call('ZADD', index, now_ms + tonumber(ttl_s) * 1000, now_ms .. ':' .. seq .. ':' .. nbytes .. ':' .. key)
  redis.call('HINCRBY', BYTES_KEY, kind, nbytes)
end
local function tracked_total()
  local b = redis.call('HMGET', BYTES_KEY, 'snapshot', 'dedupe_key', 'embedding')
  return (tonumber(b[1]) or 0) + (tonumber(b[2]) or 0) + (tonumber(b[3]) or 0)
end
"""


def alloc_size(n: int) -> int:
    """``n`` bytes as jemalloc (Redis's allocator) rounds them: four size classes per power of two."""
    if n <= 8:
        return 8
    top = 1 << (n - 1).bit_length()  # the power of two at or above n
    step = max(8, top // 8)  # classes between top/2 and top are top/8 apart
    return -(-n // step) * step


def key_bytes(key: str, value_len: int) -> int:
    """What one tracked key costs Redis's ``used_memory``: its value and its name as the allocator
    rounds them, its entries in the keyspace and expiry tables and its member in Vigil's index
    (a de-duplication key: ~330 bytes; a 29 KB snapshot: ~33 KB)."""
    return alloc_size(value_len) + 2 * alloc_size(len(key) + 24) + 160


@dataclass(frozen=True, slots=True)
class Tracked:
    """One indexed key: ``member`` is what the index holds (``<written_ms>:<seq>:<bytes>:<key>``)."""

    kind: str
    member: str
    key: str
    nbytes: int
    written_ms: int
    seq: int  # orders keys written in the same millisecond
    expires_ms: int

    @staticmethod
    def parse(kind: str, member: str, score: float) -> Tracked:
        written, seq, nbytes, key = member.split(":", 3)
        return Tracked(kind, member, key, int(nbytes), int(written), int(seq), int(score))


@dataclass(frozen=True)
class Plan:
    """What one enforcement round removes: ``expired`` keys Redis already dropped (only their index
    entries go), ``evict`` keys removed early, oldest first; ``over_bytes``: what stays above the
    budget because every remaining key must stay (de-duplication keys within the retry horizon)."""

    expired: tuple[Tracked, ...]
    evict: tuple[Tracked, ...]
    over_bytes: int


def plan_evictions(
    snapshots: Sequence[Tracked],
    dedupe_keys: Sequence[Tracked],
    total_bytes: int,
    budget_bytes: int,
    now_ms: int,
    protect_ms: int,
    embeddings: Sequence[Tracked] = (),
) -> Plan:
    """Oldest first, snapshots and embeddings alike (in the order they were written) before
    de-duplication keys, until ``total_bytes`` is within ``budget_bytes``; a de-duplication key
    written less than ``protect_ms`` before ``now_ms`` is never chosen. Expired keys are dropped
    from the index first and free their bytes uncounted."""
    expired = tuple(t for t in (*snapshots, *embeddings, *dedupe_keys) if t.expires_ms <= now_ms)
    remaining = total_bytes - sum(t.nbytes for t in expired)
    evict: list[Tracked] = []
    live_evictable = sorted(
        (t for t in (*snapshots, *embeddings) if t.expires_ms > now_ms), key=lambda t: (t.written_ms, t.seq)
    )
    live_dedupe = sorted((t for t in dedupe_keys if t.expires_ms > now_ms), key=lambda t: (t.written_ms, t.seq))
    for t in live_evictable:
        if remaining <= budget_bytes:
            break
        evict.append(t)
        remaining -= t.nbytes
    for t in live_dedupe:
        if remaining <= budget_bytes or t.written_ms > now_ms - protect_ms:
            break
        evict.append(t)
        remaining -= t.nbytes
    return Plan(expired, tuple(evict), max(0, remaining - budget_bytes))


def tracked_bytes(client: redis.Redis) -> dict[str, int]:
    """Bytes Vigil's tracked keys cost Redis now, by kind (what the budget holds)."""
    raw: Any = client.hgetall(BYTES_KEY)
    return {kind: int(raw.get(kind.encode(), 0)) for kind in INDEXES}


class RedisBudget:
    """One publisher's share of keeping Vigil's keys within ``budget_bytes`` (see the module doc)."""

    def __init__(self, client: redis.Redis, budget_bytes: int, protect_s: float) -> None:
        self._client = client
        self.budget_bytes = budget_bytes
        self._protect_ms = int(protect_s * 1000)
        self._remove = client.register_script(_REMOVE)
        self._pruned_at = time.monotonic()
        self._over = False

    def after_write(self, total_bytes: int) -> None:
        """Called with the total the publish script reported: enforce when it is over the budget, and
        now and then anyway so expired keys leave the index."""
        now = time.monotonic()
        if total_bytes > self.budget_bytes or now - self._pruned_at >= PRUNE_INTERVAL_S:
            self._pruned_at = now
            self.enforce()

    def enforce(self) -> Plan:
        """One round: read the oldest indexed keys and Redis's clock, plan, remove. Raises RedisError."""
        pipe = self._client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(BYTES_KEY)
        for index in INDEXES.values():
            pipe.zrange(index, 0, CANDIDATES - 1, withscores=True)
        reply: Any = pipe.execute()
        (sec, usec), totals, *rows = reply
        now_ms = int(sec) * 1000 + int(usec) // 1000
        total = sum(int(totals.get(kind.encode(), 0)) for kind in INDEXES)
        read = {kind: [Tracked.parse(kind, m.decode(), s) for m, s in r] for kind, r in zip(INDEXES, rows, strict=True)}
        snapshots, embeddings = _written_before_unread(read[SNAPSHOT], read[EMBEDDING])
        plan = plan_evictions(
            snapshots, read[DEDUPE_KEY], total, self.budget_bytes, now_ms, self._protect_ms, embeddings
        )
        for kind in INDEXES:
            self.remove(kind, [t.member for t in (*plan.expired, *plan.evict) if t.kind == kind])
        self._report(plan)
        return plan

    def remove(self, kind: str, members: Sequence[str]) -> int:
        """Remove indexed keys of ``kind`` (their index members); returns how many were still there,
        each counted in ``vigil_redis_evicted_total{kind}``. Raises RedisError."""
        removed = 0
        for start in range(0, len(members), REMOVE_CHUNK):
            chunk = members[start : start + REMOVE_CHUNK]
            removed += int(self._remove(keys=[INDEXES[kind], BYTES_KEY], args=[kind, *chunk])[0])
        if removed:
            REDIS_EVICTED.labels(kind).inc(removed)
        return removed

    def cap(self, kind: str, count: int, max_count: int) -> int:
        """Keep at most ``max_count`` keys of ``kind`` (``count``: how many its index holds now),
        removing the oldest; returns how many were removed. Raises RedisError."""
        if count <= max_count:
            return 0
        members: Any = self._client.zrange(INDEXES[kind], 0, count - max_count - 1)
        return self.remove(kind, [m.decode() for m in members])

    def _report(self, plan: Plan) -> None:
        """One line when Vigil's keys cannot be brought within the budget, one when they are again."""
        if plan.over_bytes and not self._over:
            log.warning(
                "Redis: Vigil's keys stay %.2f MiB over redis.memory_budget_mb (%.0f MiB): the rest are "
                "de-duplication keys a retry may still need",
                plan.over_bytes / 2**20,
                self.budget_bytes / 2**20,
            )
        elif not plan.over_bytes and self._over:
            log.info("Redis: Vigil's keys are within redis.memory_budget_mb again")
        self._over = bool(plan.over_bytes)


def _written_before_unread(snapshots: list[Tracked], embeddings: list[Tracked]) -> tuple[list[Tracked], list[Tracked]]:
    """Snapshots and embeddings go in one order, oldest first, but each kind's index is read only
    ``CANDIDATES`` deep: of a kind read to that depth, keys not read may be older than the other
    kind's newest read. Those newer keys wait for the next round."""
    bounds = [max((t.written_ms, t.seq) for t in read) for read in (snapshots, embeddings) if len(read) >= CANDIDATES]
    if not bounds:
        return snapshots, embeddings
    bound = min(bounds)
    return [t for t in snapshots if (t.written_ms, t.seq) <= bound], [
        t for t in embeddings if (t.written_ms, t.seq) <= bound
    ]
