"""Search events by meaning: their embeddings kept in Redis, scored by exact cosine against a query.

Each embedding (``pipeline.events.embeddings``: one key per event, float16) is indexed by the memory
budget as it is written, in the same script (``pipeline.events.budget``, kind ``embedding``), and
leaves with it: over ``redis.memory_budget_mb`` oldest first together with the snapshots, beyond
``events.search.max_embeddings`` oldest first (both counted in
``vigil_redis_evicted_total{kind="embedding"}``), or at its TTL (``events.search.ttl_s``). The hash
``vigil:spaces`` names the space of each tag.

A search reads that index newest first, a page at a time: a Lua script keeps the keys of the space
(and camera, kinds and time) asked for and returns their headers and vectors as one string, which
numpy reads as an array and scores in one product. Python never touches an embedding one by one::

    index = EmbeddingIndex(client)
    index.add("e1", "lobby", "object", "person", 1764000000.0, vector, "minilm-384")
    index.search(query, "minilm-384", camera="lobby", count=5)   # [SearchHit(event_id="e1", score=0.71, ...)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from pipeline.core.config import RedisConfig
from pipeline.core.config.events import SearchConfig
from pipeline.events.budget import BYTES_KEY, EMBEDDING, INDEXES, TRACK_LUA, RedisBudget, key_bytes
from pipeline.events.embeddings import (
    EMBEDDING_PREFIX,
    FORMAT,
    SEP,
    PackedEmbedding,
    Vector,
    check_space,
    pack,
    space_tag,
    unit,
    unpack,
)
from pipeline.events.redelivery import dedupe_key_ttl_s

SPACES_KEY = "vigil:spaces"
INDEX_KEY = INDEXES[EMBEDDING]
PAGE = 1000  # index members a search reads per round trip: Redis runs nothing else meanwhile
SPACES_PAGE = 10_000
_DEFAULTS = SearchConfig()
_MEMBER_SEP = b"\x1e"  # between the index members of a page's matches

# KEYS: the embedding's key, the budget's index of embeddings, the budget's bytes hash, the spaces hash.
# ARGV: value, ttl s, bytes it costs (pipeline.events.budget.key_bytes), space tag, space name.
# Written once: a second write of the same key changes nothing and is not counted again.
# Returns {1 written / 0 already there, bytes of Vigil's tracked keys, embeddings indexed}.
_ADD = (
    "local BYTES_KEY = KEYS[3]\n"
    + TRACK_LUA
    + """
local added = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  track(KEYS[2], 'embedding', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
  added = 1
end
return {added, tracked_total(), redis.call('ZCARD', KEYS[2])}
"""
)

# One page of a search. KEYS: the index. ARGV: highest score ('+inf' or one a page returned), how
# many members of that score to skip, page size, lowest score, key prefix (space tag [and camera]),
# kinds (',object,clip,' or ''), written since (ms), captured since (s), dim, space name .. 0x1f.
# Index members are '<written_ms>:<seq>:<bytes>:<key>' scored by expiry (newest first here).
# Returns {members read, the last one's score, members of that score in the page, the matches'
# header+vector (fixed size) back to back in strings of at most 8 KB (Lua builds one large string
# slowly), their index members joined by 0x1e, dims of other sizes}.
_SCAN = """
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[4], 'WITHSCORES', 'LIMIT', ARGV[2], ARGV[3])
local prefix, kinds, trailer = ARGV[5], ARGV[6], ARGV[10]
local written_since, since, dim = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local size = 11 + 2 * dim
local records, members, others = {}, {}, {}
for i = 1, #rows, 2 do
  local written, key = string.match(rows[i], '^(%d+):%d+:%d+:(.*)$')
  local wanted = key and string.find(key, prefix, 1, true) == 1 and tonumber(written) >= written_since
  if wanted and kinds ~= '' then
    local kind = string.match(key, '^[^:]*:[^:]*:[^:]*:[^:]*:([^:]*):') or ''
    wanted = string.find(kinds, ',' .. kind .. ',', 1, true) ~= nil
  end
  local value = wanted and redis.call('GET', key)
  if value then
    local version, d, ts = struct.unpack('<BHd', value)
    if version ~= 1 or d ~= dim then
      others[#others + 1] = d
    elseif ts >= since and string.find(value, trailer, size + 1, true) == size + 1 then
      records[#records + 1] = string.sub(value, 1, size)
      members[#members + 1] = rows[i]
    end
  end
end
local group, blocks = math.max(1, math.floor(8000 / size)), {}
for j = 1, #records, group do
  blocks[#blocks + 1] = table.concat(records, '', j, math.min(j + group - 1, #records))
end
local last, ties = '', 0
for i = #rows, 2, -2 do
  if last == '' then last = rows[i] end
  if rows[i] ~= last then break end
  ties = ties + 1
end
return {#rows / 2, last, ties, blocks, table.concat(members, '\\30'), table.concat(others, ',')}
"""

# How many embeddings of each space tag the index holds, ARGV[2] members from rank ARGV[1] on.
# Returns {members read, {tag, count, tag, count, ...}}.
_SPACES = """
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1)
local counts, out = {}, {}
for _, member in ipairs(rows) do
  local tag = string.match(member, '^%d+:%d+:%d+:vigil:emb:([^:]*):')
  if tag then counts[tag] = (counts[tag] or 0) + 1 end
end
for tag, n in pairs(counts) do
  out[#out + 1] = tag
  out[#out + 1] = n
end
return {#rows, out}
"""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One event an embedding search found. ``score``: cosine similarity to the query (-1..1);
    ``written_ms``: when Redis stored the embedding (its clock), just after the event itself."""

    event_id: str
    score: float
    camera: str
    kind: str
    label: str
    captured_at: float
    written_ms: int


@dataclass(frozen=True, slots=True)
class Written:
    """What one write of embeddings did: ``added`` new ones, ``failed`` refused by Redis (``error``: the first)."""

    added: int
    failed: int
    error: redis.RedisError | None


class EmbeddingIndex:
    """Event embeddings in Redis: written beside the events, searched by cosine.

    ``budget``: the publisher's (writes then count against the same ``redis.memory_budget_mb`` and
    enforce it); None: one of this index's own, of ``memory_budget_mb``. Reading needs neither.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_s: int = _DEFAULTS.ttl_s,
        max_embeddings: int = _DEFAULTS.max_embeddings,
        budget: RedisBudget | None = None,
        memory_budget_mb: int = RedisConfig.model_fields["memory_budget_mb"].default,
    ) -> None:
        self._client = client
        self.ttl_s, self.max_embeddings = ttl_s, max_embeddings
        self._budget = budget
        self._memory_budget_mb = memory_budget_mb
        self._add = client.register_script(_ADD)
        self._scan = client.register_script(_SCAN)
        self._count_spaces = client.register_script(_SPACES)

    def add(
        self, event_id: str, camera: str, kind: str, label: str, ts: float, vector: npt.ArrayLike, space: str
    ) -> bool:
        """Store one event's embedding (after the event is in its camera's stream: a search reads the
        event back from the time Redis stored this). True if written, False if it was there already.
        Raises ValueError for a bad vector or name, RedisError when Redis refuses it."""
        written = self.write([pack(event_id, camera, kind, label, ts, vector, space)])
        if written.error is not None:
            raise written.error
        return written.added == 1

    def write(self, packed: Sequence[PackedEmbedding]) -> Written:
        """Store packed embeddings in one round trip, then hold the budget and the count cap. What
        Redis refuses is reported in the result; RedisError only when it cannot be reached."""
        if not packed or self.max_embeddings == 0:
            return Written(0, 0, None)
        pipe = self._client.pipeline(transaction=False)
        for p in packed:
            keys = [p.key, INDEX_KEY, BYTES_KEY, SPACES_KEY]
            args: list[bytes | str | int] = [p.value, self.ttl_s, key_bytes(p.key, len(p.value))]
            args += [space_tag(p.space), p.space]
            self._add(keys=keys, args=args, client=pipe)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        done = [r for r in replies if not isinstance(r, Exception)]
        errors = [r for r in replies if isinstance(r, redis.RedisError)]
        if done:
            budget = self._writer_budget()
            budget.after_write(max(int(r[1]) for r in done))
            budget.cap(EMBEDDING, max(int(r[2]) for r in done), self.max_embeddings)
        return Written(sum(int(r[0]) for r in done), len(replies) - len(done), errors[0] if errors else None)

    def revise(self, packed: Sequence[PackedEmbedding]) -> int:
        """Replace embeddings already stored (same event, same size; their expiry kept) in one round
        trip; one no longer there (expired, removed by the budget) stays gone. Returns how many were
        replaced; RedisError when Redis cannot be reached."""
        if not packed or self.max_embeddings == 0:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for p in packed:
            pipe.set(p.key, p.value, xx=True, keepttl=True)
        return sum(1 for r in pipe.execute() if r)

    def _writer_budget(self) -> RedisBudget:
        if self._budget is None:
            timeout_s = float(self._client.connection_pool.connection_kwargs.get("socket_timeout") or 5.0)
            protect_s = dedupe_key_ttl_s(None, timeout_s)
            self._budget = RedisBudget(self._client, self._memory_budget_mb * 2**20, protect_s)
        return self._budget

    def spaces(self) -> dict[str, int]:
        """The spaces embeddings are stored in, with how many each (expired ones not yet pruned included)."""
        counts: dict[str, int] = {}
        start = 0
        while True:
            read, pairs = self._count_spaces(keys=[INDEX_KEY], args=[start, SPACES_PAGE])
            for tag, n in zip(pairs[::2], pairs[1::2], strict=True):
                counts[tag.decode()] = counts.get(tag.decode(), 0) + int(n)
            if int(read) < SPACES_PAGE:
                break
            start += SPACES_PAGE
        names: Any = self._client.hgetall(SPACES_KEY) if counts else {}
        named = {k.decode(): v.decode() for k, v in names.items()}
        return {named.get(tag, f"<unnamed {tag}>"): n for tag, n in counts.items()}

    def search(
        self,
        query: npt.ArrayLike,
        space: str,
        camera: str | None = None,
        since: float | None = None,
        kinds: Sequence[str] | None = None,
        count: int = 10,
        window: int | None = None,
    ) -> list[SearchHit]:
        """The ``count`` events whose embeddings in ``space`` are closest to ``query`` (exact cosine),
        best first, among the ``window`` most recent ones (None: all stored) that match ``camera``,
        ``kinds`` and ``since`` (capture time, UNIX s, included). ValueError when the query's size is
        not the stored vectors'."""
        q = unit(query)
        ranking = Ranking(q, count)
        prefix = f"{EMBEDDING_PREFIX}{space_tag(space)}:{camera + ':' if camera else ''}"
        since_ms = -1.0 if since is None else since * 1000.0  # stored after captured: older keys are out
        fixed: list[bytes | str | int | float] = [
            max(since_ms, 0.0),
            prefix,
            f",{','.join(kinds)}," if kinds else "",
            since_ms,
            -1e300 if since is None else since,
            q.size,
            check_space(space).encode() + SEP,
        ]
        top, offset = "+inf", 0
        remaining = window
        while remaining is None or remaining > 0:
            read, last, ties, records, details, others = self._scan(keys=[INDEX_KEY], args=[top, offset, PAGE, *fixed])
            scored = ranking.add(b"".join(records), details, remaining)
            remaining = None if remaining is None else remaining - scored
            ranking.other_dims.update(int(d) for d in others.split(b",") if d)
            if int(read) < PAGE:
                break
            offset, top = (offset + int(ties) if last.decode() == top else int(ties)), last.decode()
        if not ranking.scored and ranking.other_dims:
            dims = ", ".join(str(d) for d in sorted(ranking.other_dims))
            raise ValueError(f"the {space} vectors stored have {dims} values, the query {q.size}")
        return self._labelled(ranking.best())

    def _labelled(self, found: list[Found]) -> list[SearchHit]:
        """Hits with the labels their values hold (read for the best ones only)."""
        values: Any = self._client.mget([f.key for f in found]) if found else []
        hits = []
        for f, value in zip(found, values, strict=True):
            _vigil, _emb, _tag, camera, kind, event_id = f.key.decode().split(":", 5)
            label = unpack(value)[1] if value is not None else ""  # expired since the scan: no label
            hits.append(SearchHit(event_id, f.score, camera, kind, label, f.captured_at, f.written_ms))
        return hits


@dataclass(frozen=True, slots=True)
class Found:
    """A match a search kept: its score, its key, when it was stored (ms) and captured (s)."""

    score: float
    key: bytes
    written_ms: int
    captured_at: float


class Ranking:
    """The best ``count`` of the embeddings a search scored so far (``add`` a page at a time)."""

    def __init__(self, query: Vector, count: int) -> None:
        self.query, self.count = query, count
        self.scored = 0
        self.other_dims: set[int] = set()
        self._record = np.dtype([("format", "u1"), ("dim", "<u2"), ("ts", "<f8"), ("vector", "<f2", (query.size,))])
        self._best: list[Found] = []

    def add(self, records: bytes, members: bytes, limit: int | None = None) -> int:
        """Score one page: ``records`` the matches' headers and vectors back to back, ``members``
        their index members (``<written_ms>:<seq>:<bytes>:<key>``) joined by 0x1e; the first
        ``limit`` of them (None: all). Returns how many were scored."""
        rows = np.frombuffer(records, self._record)[:limit]
        if not len(rows):
            return 0
        if np.any(rows["format"] != FORMAT) or np.any(rows["dim"] != self.query.size):
            raise ValueError("a page of embeddings that is not of one format and size")
        scores = cosines(rows["vector"], self.query)
        top = np.argsort(-scores)[: self.count]
        found = members.split(_MEMBER_SEP)
        for j in top.tolist():
            written_ms, _seq, _bytes, key = found[j].split(b":", 3)
            self._best.append(Found(float(scores[j]), key, int(written_ms), float(rows["ts"][j])))
        self._best = sorted(self._best, key=lambda f: -f.score)[: self.count]
        self.scored += len(rows)
        return len(rows)

    def best(self) -> list[Found]:
        return list(self._best)


def cosines(vectors: npt.NDArray[np.float16], query: Vector) -> npt.NDArray[np.float32]:
    """Cosine of each row of ``vectors`` (N, dim) with the unit ``query``: float32 arithmetic."""
    m = vectors.astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", m, m))
    return np.asarray(np.clip((m @ query) / np.maximum(norms, 1e-12), -1.0, 1.0), dtype=np.float32)
