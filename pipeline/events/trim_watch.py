"""Watching the event streams' trimming for entries a consumer group had not read yet.

Each stream is trimmed to about ``redis.stream_maxlen`` entries as Vigil adds to it. A consumer group
that falls that far behind loses the oldest entries it has not read. The publisher checks its
streams every :data:`CHECK_INTERVAL_S`: a group whose unread entries (its ``lag``) reach
:data:`WARN_FRACTION` of ``stream_maxlen`` is warned about before anything is lost, and entries
trimmed past a group's last delivered entry are counted in
``vigil_redis_evicted_total{kind="unread_stream_entry"}``: the entries trimmed since the previous
check (by any publisher), when the group's last delivered entry is older than the stream's first.
One line is logged when such an episode starts and one when every group has caught up again. The
count lives in Redis (:data:`WATCH_KEY`), so publishers checking the same stream count each
trimmed entry once.
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

WATCH_KEY = "vigil:trimwatch"
CHECK_INTERVAL_S = 5.0
WARN_FRACTION = 0.9
UNREAD = "unread_stream_entry"
REDIS_EVICTED.labels(UNREAD)  # the series exists from the start, at zero

# KEYS: the watch hash, then the streams. For each consumer group of each stream: {stream, group,
# entries trimmed unread since the last check, lag (-1: Redis cannot tell)}. The hash keeps, per stream
# and group, how many entries the stream had lost to trimming at the last check; a group seen for the
# first time starts from now.
_CHECK = """
local function kv(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local out = {}
for i = 2, #KEYS do
  local stream = KEYS[i]
  if redis.call('EXISTS', stream) == 1 then
    local info = kv(redis.call('XINFO', 'STREAM', stream))
    local trimmed = tonumber(info['entries-added']) - tonumber(info['length'])
    local first = info['first-entry'] and info['first-entry'][1]
    for _, flat in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      local g = kv(flat)
      local field = stream .. ' ' .. g['name']
      local before = tonumber(redis.call('HGET', KEYS[1], field)) or trimmed
      local lost = 0
      if first and trimmed > before and older(g['last-delivered-id'], first) then lost = trimmed - before end
      redis.call('HSET', KEYS[1], field, trimmed)
      table.insert(out, {stream, g['name'], lost, tonumber(g['lag']) or -1})
    end
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group of one stream at a check."""

    stream: str
    group: str
    lost: int  # entries trimmed unread since the previous check
    lag: int  # unread entries still in the stream (-1: unknown)


class TrimWatch:
    """Checks ``streams`` for consumer groups losing unread entries to ``maxlen`` trimming."""

    def __init__(self, client: redis.Redis, streams: Sequence[str], maxlen: int) -> None:
        self._client = client
        self._streams = list(streams)
        self._maxlen = maxlen
        self._script = client.register_script(_CHECK)
        self._checked_at = -CHECK_INTERVAL_S
        self._episode = False

    def maybe_check(self) -> None:
        """``check()`` at most every CHECK_INTERVAL_S. Raises RedisError."""
        now = time.monotonic()
        if now - self._checked_at >= CHECK_INTERVAL_S:
            self._checked_at = now
            self.check()

    def check(self) -> list[GroupState]:
        rows: Any = self._script(keys=[WATCH_KEY, *self._streams])
        states = [GroupState(_text(s), _text(g), int(lost), int(lag)) for s, g, lost, lag in rows]
        lost = sum(s.lost for s in states)
        if lost:
            REDIS_EVICTED.labels(UNREAD).inc(lost)
        behind = [s for s in states if s.lost or s.lag >= WARN_FRACTION * self._maxlen]
        if behind and not self._episode:
            worst = max(behind, key=lambda s: (s.lost, s.lag))
            log.warning(
                "Redis: consumer group %s on %s is %s behind and redis.stream_maxlen is %d: %s",
                worst.group,
                worst.stream,
                f"{worst.lag} entries" if worst.lag >= 0 else "an unknown number of entries",
                self._maxlen,
                f"{lost} unread entries were trimmed" if lost else "its oldest unread entries are about to be trimmed",
            )
        elif not behind and self._episode:
            log.info("Redis: every consumer group is within redis.stream_maxlen of the newest entry again")
        self._episode = bool(behind)
        return states


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
