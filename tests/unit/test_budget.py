"""The Redis budget's choice of what to remove (oldest first, snapshots before de-duplication keys,
none of those a retry may still need), the size it counts per key, and how long de-duplication keys
live."""

from __future__ import annotations

import pytest

from pipeline.events.budget import DEDUPE_KEY, SNAPSHOT, Tracked, alloc_size, key_bytes, plan_evictions
from pipeline.events.redelivery import RETRY_HORIZON_S, InDoubt, dedupe_key_ttl_s

NOW_MS = 1_800_000_000_000
PROTECT_MS = 610_000
KB = 1000


def tracked(kind: str, name: str, age_s: float, nbytes: int, ttl_s: float = 3600, seq: int = 1) -> Tracked:
    written = NOW_MS - int(age_s * 1000)
    member = f"{written}:{seq:015d}:{nbytes}:{name}"
    return Tracked(kind, member, name, nbytes, written, seq, written + int(ttl_s * 1000))


def snap(name: str, age_s: float, nbytes: int = 30 * KB, ttl_s: float = 3600, seq: int = 1) -> Tracked:
    return tracked(SNAPSHOT, f"vigil:snapshot:{name}", age_s, nbytes, ttl_s, seq)


def seen(name: str, age_s: float, nbytes: int = 300, ttl_s: float = 3600) -> Tracked:
    return tracked(DEDUPE_KEY, f"vigil:seen:{name}", age_s, nbytes, ttl_s)


def names(items: tuple[Tracked, ...]) -> list[str]:
    return [t.key.rsplit(":", 1)[1] for t in items]


def plan(snapshots: list[Tracked], dedupe: list[Tracked], budget: int) -> tuple[list[str], list[str], int]:
    total = sum(t.nbytes for t in (*snapshots, *dedupe))
    p = plan_evictions(snapshots, dedupe, total, budget, NOW_MS, PROTECT_MS)
    return names(p.expired), names(p.evict), p.over_bytes


@pytest.mark.parametrize(
    ("snapshots", "dedupe", "budget", "expired", "evicted", "over"),
    [
        pytest.param([snap("a", 30), snap("b", 20)], [], 60 * KB, [], [], 0, id="within budget: nothing goes"),
        pytest.param(
            [snap("new", 10), snap("old", 50), snap("mid", 30)],
            [],
            35 * KB,
            [],
            ["old", "mid"],
            0,
            id="oldest first, whatever the index order",
        ),
        pytest.param(
            [snap("z-second", 5, seq=8), snap("a-third", 5, seq=9), snap("m-first", 5, seq=7)],
            [],
            35 * KB,
            [],
            ["m-first", "z-second"],
            0,
            id="within one millisecond, in the order written",
        ),
        pytest.param(
            [snap("s", 1)],
            [seen("d1", 900), seen("d2", 800)],
            400,
            [],
            ["s", "d1"],
            0,
            id="every snapshot before a de-duplication key, then the oldest key past the horizon",
        ),
        pytest.param(
            [],
            [seen("fresh1", 10), seen("fresh2", 20)],
            100,
            [],
            [],
            500,
            id="de-duplication keys within the retry horizon stay, over budget or not",
        ),
        pytest.param(
            [],
            [seen("recent", 609), seen("past", 611)],
            300,
            [],
            ["past"],
            0,
            id="the horizon's edge: 611 s old goes, 609 s old stays",
        ),
        pytest.param(
            [snap("gone", 4000, ttl_s=3600), snap("live", 10)],
            [seen("gone-key", 4000, ttl_s=3600)],
            30 * KB,
            ["gone", "gone-key"],
            [],
            0,
            id="expired keys free their bytes without counting as removed",
        ),
    ],
)
def test_plan_removes_oldest_first_snapshots_first_and_never_a_key_a_retry_needs(
    snapshots: list[Tracked], dedupe: list[Tracked], budget: int, expired: list[str], evicted: list[str], over: int
) -> None:
    assert plan(snapshots, dedupe, budget) == (expired, evicted, over)


def test_tracked_member_round_trips() -> None:
    t = snap("e1", 5, nbytes=33_120)
    assert Tracked.parse(SNAPSHOT, t.member, t.expires_ms) == t


@pytest.mark.parametrize(
    ("n", "rounded"),
    [(1, 8), (8, 8), (9, 16), (33, 40), (67, 80), (100, 112), (17_000, 20_480), (29_000, 32_768), (32_768, 32_768)],
)
def test_sizes_are_rounded_as_the_allocator_rounds_them(n: int, rounded: int) -> None:
    assert alloc_size(n) == rounded


def test_a_snapshot_costs_its_rounded_jpeg_plus_a_few_hundred_bytes() -> None:
    key = "vigil:snapshot:" + "0" * 32
    assert 32_768 < key_bytes(key, 29_000) < 32_768 + 600
    assert 200 < key_bytes("vigil:seen:" + "0" * 32, 1) < 600


@pytest.mark.parametrize(
    ("configured", "socket_timeout_s", "ttl"),
    [
        pytest.param(None, 5.0, 610, id="unset: the horizon plus two socket timeouts"),
        pytest.param(None, 10.0, 620, id="a longer socket timeout lengthens it"),
        pytest.param(86_400, 5.0, 86_400, id="set longer: kept"),
        pytest.param(60, 5.0, 610, id="set shorter than the horizon: the horizon's"),
    ],
)
def test_dedupe_key_lives_as_long_as_a_retry_can_rely_on_it(
    configured: int | None, socket_timeout_s: float, ttl: int
) -> None:
    assert RETRY_HORIZON_S == 600.0
    assert dedupe_key_ttl_s(configured, socket_timeout_s) == ttl


def test_retries_past_the_horizon_and_a_newly_opened_outbox_are_checked() -> None:
    doubt = InDoubt(horizon_s=60.0)  # any horizon: a short one here
    assert doubt.needs_check(now=0.0), "another process may have sent the head of an outbox just opened"
    doubt.checked()
    assert not doubt.needs_check(now=0.0)
    doubt.attempting(now=100.0)
    doubt.attempting(now=150.0)  # a retry: the first attempt's time stands
    assert not doubt.needs_check(now=160.0)
    assert doubt.needs_check(now=160.5), "a retry later than the horizon cannot rely on the key"
    doubt.confirmed()
    assert not doubt.needs_check(now=1000.0)
