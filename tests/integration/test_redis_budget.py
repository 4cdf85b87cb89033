"""What Vigil keeps in Redis stays within ``redis.memory_budget_mb``, and exactly-once holds while it
does: real redis-server processes, real publishers, a real publisher process that dies mid-delivery,
a real file-size limit under the outbox."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import generate_latest

from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events.budget import BYTES_KEY, INDEXES, tracked_bytes
from pipeline.events.publisher import SEEN_PREFIX, EventPublisher, camera_stream
from pipeline.events.snapshots import snapshot_key
from pipeline.events.spool import Spool
from pipeline.runtime.redis_server import EmbeddedRedis, free_port
from tests.support.configs import sample_event
from tests.support.crash import crash_after_confirm, stream_ids
from tests.support.metrics import value
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20
JPEG_BYTES = 29_000  # a demo snapshot's size


def evicted(kind: str) -> float:
    return value(generate_latest(VIGIL_REGISTRY).decode(), "vigil_redis_evicted_total", kind=kind) or 0.0


def budgeted_bytes(client: redis.Redis) -> int:
    """MEMORY USAGE of every key the budget covers: snapshots, de-duplication keys and their index."""
    keys = [*client.scan_iter("vigil:snapshot:*"), *client.scan_iter(f"{SEEN_PREFIX}*"), BYTES_KEY, *INDEXES.values()]
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)


@pytest.fixture()
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as s:
        yield s


def test_over_budget_the_oldest_snapshots_go_and_the_budget_holds(server: EmbeddedRedis, tmp_path: Path) -> None:
    """60 start events with 29 KB snapshots (~2 MB) under a 1 MiB budget: Redis keeps the newest
    snapshots, the oldest are gone and counted, Vigil's keys take at most the budget, and every event
    is still in its streams exactly once (the budget never touches streams or keys a retry needs)."""
    cam = "budget"
    client = redis.Redis.from_url(server.url)
    pub = EventPublisher(server.url, cam, tmp_path / "cam.sqlite", memory_budget_mb=1)
    before = evicted("snapshot")
    events = [sample_event(cam, i) for i in range(60)]
    ids = [e.event_id for e in events]
    for start in range(0, len(events), 10):
        chunk = events[start : start + 10]
        pub.publish(chunk, {ev.event_id: os.urandom(JPEG_BYTES) for ev in chunk})
        assert pub.flush(10)
        assert budgeted_bytes(client) <= MIB, f"over the budget after {start + 10} events"
    pub.close()
    kept = [i for i in ids if client.exists(snapshot_key(i))]
    assert 20 <= len(kept) < len(ids), f"{len(kept)} snapshots kept"
    assert kept == ids[-len(kept) :], "the snapshots kept must be the newest ones"
    assert evicted("snapshot") == before + len(ids) - len(kept)
    assert stream_ids(client, camera_stream(cam)) == ids
    assert all(client.exists(f"{SEEN_PREFIX}{i}") for i in ids), "de-duplication keys within the horizon stay"
    client.close()


def test_keys_a_retry_needs_stay_over_budget_and_the_retry_writes_once(
    server: EmbeddedRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """3,500 events' de-duplication keys (~1.2 MB) fill a 1 MiB budget that holds no snapshot: none of
    them goes while a retry may come (one warning says so), and the same events handed over again
    through the same publisher, within the retry horizon, are not written again."""
    cam = "retry-within"
    client = redis.Redis.from_url(server.url)
    pub = EventPublisher(server.url, cam, tmp_path / "cam.sqlite", memory_budget_mb=1)
    before = evicted("dedupe_key")
    events = [sample_event(cam, i) for i in range(3500)]
    with caplog.at_level(logging.WARNING, logger="pipeline.events.budget"):
        for start in range(0, len(events), 500):
            pub.publish(events[start : start + 500])
            assert pub.flush(20)
    assert sum(tracked_bytes(client).values()) > MIB, "the test needs the budget exceeded by keys alone"
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.events.budget"]
    assert len(warnings) == 1 and "de-duplication keys a retry may still need" in warnings[0], warnings
    pub.publish(events[:300])  # a retry of events Redis has
    assert pub.flush(20)
    pub.close()
    assert evicted("dedupe_key") == before
    assert stream_ids(client, camera_stream(cam)) == [e.event_id for e in events], "an event was written twice"
    ttl = client.ttl(f"{SEEN_PREFIX}{events[-1].event_id}")
    assert 0 < ttl <= 610, f"a de-duplication key lives the retry horizon, not a day (TTL {ttl} s)"
    client.close()


def test_retry_later_than_the_dedupe_keys_lifetime_still_writes_once(server: EmbeddedRedis, tmp_path: Path) -> None:
    """A publisher process dies between Redis confirming a batch and the outbox forgetting it, and its
    de-duplication keys are gone before the outbox is opened again (their lifetime ended, or the
    budget removed them past the horizon): the next publisher still writes each event once, in order."""
    cam, path = "retry-late", tmp_path / "late.sqlite"
    ids = crash_after_confirm(server.url, path, cam)
    client = redis.Redis.from_url(server.url)
    assert stream_ids(client, camera_stream(cam)) == ids, "Redis must have confirmed the batch"
    assert [r.item_id for r in Spool.read(path)] == ids, "the outbox must still hold it"
    assert client.delete(*(f"{SEEN_PREFIX}{i}" for i in ids)) == len(ids)
    restarted = EventPublisher(server.url, cam, path)
    assert restarted.flush(10)
    restarted.close()
    assert Spool.read(path) == []
    assert stream_ids(client, camera_stream(cam)) == ids
    client.close()


def test_a_group_losing_unread_entries_to_trimming_is_warned_and_counted(
    server: EmbeddedRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A consumer group that reads nothing while stream_maxlen (100) trims the camera's stream: one
    warning names the group, and the entries trimmed unread are counted."""
    cam = "trimmed"
    client = redis.Redis.from_url(server.url)
    client.xgroup_create(camera_stream(cam), "slow", id="0", mkstream=True)
    pub = EventPublisher(server.url, cam, tmp_path / "cam.sqlite", stream_maxlen=100)
    before = evicted("unread_stream_entry")
    published = 0

    def lost_more_than(count: float) -> bool:
        nonlocal published
        pub.publish([sample_event(cam, published + i) for i in range(50)])
        published += 50
        pub.flush(10)
        return evicted("unread_stream_entry") > count

    with caplog.at_level(logging.WARNING, logger="pipeline.events.trim_watch"):
        wait_for(lambda: lost_more_than(before), 30, "entries trimmed unread to be counted")
        once = evicted("unread_stream_entry")
        wait_for(lambda: lost_more_than(once), 30, "the next check to count more")  # the same episode
    pub.close()
    info: Any = client.xinfo_stream(camera_stream(cam))
    trimmed = info["entries-added"] - info["length"]
    assert 0 < evicted("unread_stream_entry") - before <= trimmed
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.events.trim_watch"]
    assert len(warnings) == 1 and "slow" in warnings[0] and camera_stream(cam) in warnings[0], warnings
    client.close()


# Publishes events with snapshots while Redis is down, under a file-size limit that the outbox
# reaches; then, told to go on, waits for Redis and reports.
FULL_SPOOL = """
import json, resource, signal, sys
from pathlib import Path

from prometheus_client import generate_latest

from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events.publisher import EventPublisher
from tests.support.configs import sample_event
from tests.support.metrics import value

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
url, path, camera, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
publisher = EventPublisher(url, camera, path, retry_cap_s=0.2)
events = [sample_event(camera, i) for i in range(n)]
for ev in events:
    publisher.publish([ev], {ev.event_id: bytes(20_000)})
errors = value(generate_latest(VIGIL_REGISTRY).decode(), "vigil_disk_write_errors_total", what="spool")
print(json.dumps({"ids": [e.event_id for e in events], "spooled": publisher.spooled, "errors": errors}), flush=True)
sys.stdin.readline()
print(json.dumps({"flushed": publisher.flush(60)}), flush=True)
publisher.close()
"""


@pytest.mark.timeout(180)
def test_full_spool_disk_keeps_events_in_memory_and_delivers_them_in_order(tmp_path: Path) -> None:
    """The outbox's file reaches a real file-size limit (EFBIG) while Redis is down: the camera's
    publisher goes on, counts the failed writes, holds what the outbox cannot take in memory, and once
    Redis is up every event arrives exactly once, in order."""
    import json

    port = free_port()
    cam, path = "full-disk", tmp_path / "cam.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", FULL_SPOOL, f"redis://127.0.0.1:{port}/0", str(path), cam, "40"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        report = json.loads(child.stdout.readline() or "{}")
        assert report, child.stderr.read() if child.stderr else ""
        assert report["errors"] >= 1, "the outbox's writes past the limit must fail and be counted"
        assert report["spooled"] == 40, "every event waits, on disk or in memory"
        assert len(Spool.read(path)) < 40, "some events must be waiting in memory"
        with EmbeddedRedis(port=port) as server:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert json.loads(child.stdout.readline() or "{}") == {"flushed": True}
            client = redis.Redis.from_url(server.url)
            assert stream_ids(client, camera_stream(cam)) == report["ids"]
            client.close()
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
