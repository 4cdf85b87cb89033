"""Searching events by text against real redis-server processes: embeddings written by the real
``EventPublisher`` beside its events, held to the memory budget and the count cap, a write Redis
refuses costing nothing but the embedding, and search through ``EventClient`` and through
``vigil events search`` in its own process, with real all-MiniLM-L6-v2 vectors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from prometheus_client import generate_latest

from pipeline.core.messages import Event
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events import search
from pipeline.events.budget import BYTES_KEY, INDEXES, tracked_bytes
from pipeline.events.client import EventClient, NothingToSearch
from pipeline.events.embeddings import MINILM_SPACE, EventEmbedding, clip_space, embedding_key
from pipeline.events.publisher import EVENTS_STREAM, SEEN_PREFIX, EventPublisher, camera_stream
from pipeline.events.search import EmbeddingIndex
from pipeline.events.snapshots import snapshot_key
from pipeline.events.text_encoders import TextEncoder, text_encoder
from pipeline.runtime.redis_server import EmbeddedRedis, free_port
from tests.support.configs import sample_event
from tests.support.crash import stream_ids
from tests.support.metrics import value

VIGIL = [sys.executable, "-m", "pipeline.cli.app"]
MIB = 2**20
FALL_QUERY = "someone has fallen over"
SCENES = {  # event name: (camera, kind, label, caption embedded as the event's vector)
    "fall": ("lobby", "object", "person", "a person lying on the ground"),
    "car": ("lobby", "object", "car", "a car parked in the street"),
    "corridor": ("dock", "clip", "walking", "people walking along a corridor"),
    "dog": ("dock", "object", "dog", "a dog running on the grass"),
    "truck": ("lobby", "clip", "unloading", "a delivery truck unloading boxes"),
}


def metric(name: str, **labels: str) -> float:
    return value(generate_latest(VIGIL_REGISTRY).decode(), name, **labels) or 0.0


def random_embeddings(events: list[Event], dim: int = 384, seed: int = 0) -> dict[str, EventEmbedding]:
    rng = np.random.default_rng(seed)
    return {ev.event_id: EventEmbedding(rng.normal(size=dim).astype(np.float32), MINILM_SPACE) for ev in events}


def publish(
    url: str,
    spool: Path,
    camera: str,
    batches: list[list[Event]],
    embeddings: dict[str, EventEmbedding],
    snapshots: dict[str, bytes] | None = None,
    **options: int,
) -> None:
    """One publisher; each batch handed over and confirmed by Redis before the next."""
    pub = EventPublisher(url, camera, spool / f"{camera}.sqlite", **options)
    try:
        for batch in batches:
            pub.publish(batch, snapshots, embeddings=embeddings)
            assert pub.flush(10), "events not delivered"
    finally:
        pub.close()


def stored_embeddings(client: redis.Redis, events: list[Event]) -> list[bool]:
    return [bool(client.exists(embedding_key(MINILM_SPACE, e.camera_id, e.kind, e.event_id))) for e in events]


def budgeted_bytes(client: redis.Redis) -> int:
    """MEMORY USAGE of every key the budget covers, embeddings and the spaces hash included."""
    keys = [
        *client.scan_iter("vigil:snapshot:*"),
        *client.scan_iter(f"{SEEN_PREFIX}*"),
        *client.scan_iter("vigil:emb:*"),
        BYTES_KEY,
        "vigil:spaces",
        *INDEXES.values(),
    ]
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)


@pytest.fixture()
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as s:
        yield s


def test_over_budget_the_oldest_embeddings_go_and_the_budget_holds(server: EmbeddedRedis, tmp_path: Path) -> None:
    """1,200 events with 384-d embeddings (~1.5 MB, and ~0.4 MB of de-duplication keys a retry may
    still need) under a 1 MiB budget: Redis keeps the newest embeddings, the oldest are gone and
    counted, Vigil's keys take at most the budget (what the budget counts is within 10 % of Redis's
    own figure), and every event is in its streams once."""
    client = redis.Redis.from_url(server.url)
    events = [sample_event("emb", i) for i in range(1200)]
    before = metric("vigil_redis_evicted_total", kind="embedding")
    publish(
        server.url, tmp_path, "emb", [events[i : i + 100] for i in range(0, 1200, 100)], random_embeddings(events),
        memory_budget_mb=1,
    )  # fmt: skip
    kept = stored_embeddings(client, events)
    n = sum(kept)
    assert 400 < n < 1200 and kept == [False] * (1200 - n) + [True] * n, "the newest embeddings must be the ones kept"
    assert metric("vigil_redis_evicted_total", kind="embedding") == before + 1200 - n
    used = budgeted_bytes(client)
    assert used <= MIB
    counted = sum(tracked_bytes(client).values())
    assert abs(counted - used) < 0.1 * used, f"the budget counts {counted} bytes, Redis uses {used}"
    assert stream_ids(client, camera_stream("emb")) == [e.event_id for e in events]
    client.close()


def test_snapshots_and_embeddings_go_oldest_first_together(server: EmbeddedRedis, tmp_path: Path) -> None:
    """Each event writes its snapshot, then its embedding: over the budget, Redis loses a prefix of
    that sequence, whatever the kind."""
    client = redis.Redis.from_url(server.url)
    events = [sample_event("mixed", i) for i in range(60)]
    jpegs = {e.event_id: os.urandom(29_000) for e in events}
    publish(server.url, tmp_path, "mixed", [[e] for e in events], random_embeddings(events), jpegs, memory_budget_mb=1)
    snaps = [bool(client.exists(snapshot_key(e.event_id))) for e in events]
    embs = stored_embeddings(client, events)
    first_snap, first_emb = snaps.index(True), embs.index(True)
    assert all(snaps[first_snap:]) and all(embs[first_emb:]), "what is kept is the newest of each kind"
    assert 0 < first_emb <= first_snap <= first_emb + 1, (first_snap, first_emb)
    assert budgeted_bytes(client) <= MIB
    client.close()


def test_beyond_the_count_cap_the_oldest_embeddings_go(server: EmbeddedRedis, tmp_path: Path) -> None:
    client = redis.Redis.from_url(server.url)
    events = [sample_event("capped", i) for i in range(120)]
    before = metric("vigil_redis_evicted_total", kind="embedding")
    publish(server.url, tmp_path, "capped", [events[:70], events[70:]], random_embeddings(events), max_embeddings=50)
    assert stored_embeddings(client, events) == [False] * 70 + [True] * 50
    assert metric("vigil_redis_evicted_total", kind="embedding") == before + 70
    client.close()


def test_a_refused_embedding_costs_the_event_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, minilm: TextEncoder
) -> None:
    """A Redis user that may not write embeddings: every event still reaches both streams exactly
    once, nothing is retried or left in the outbox, the lost embeddings are counted and logged once.
    Once the user may write them, the next events are searchable again."""
    with EmbeddedRedis(password="adm1n") as server:
        admin = redis.Redis.from_url(server.url)
        vigil_keys = [
            "vigil:events*",
            "vigil:status",
            "vigil:seen:*",
            "vigil:budget:*",
            "vigil:snapshot:*",
            "vigil:trimwatch",
        ]
        admin.acl_setuser("vigil", enabled=True, passwords=["+pw"], keys=vigil_keys, channels=["*"], commands=["+@all"])
        url = f"redis://vigil:pw@127.0.0.1:{server.port}/0"
        events = [sample_event("refused", i) for i in range(30)]
        vectors = minilm([SCENES["fall"][3]] * 30)
        embeddings = {e.event_id: EventEmbedding(v, MINILM_SPACE) for e, v in zip(events, vectors, strict=True)}
        lost_before = metric("vigil_publish_errors_total", reason="embedding")
        all_errors_before = sum(
            metric("vigil_publish_errors_total", reason=r) for r in ("ResponseError", "NoPermissionError")
        )
        pub = EventPublisher(url, "refused", tmp_path / "refused.sqlite")
        with caplog.at_level(logging.WARNING, logger="pipeline.events.embedding_writer"):
            for batch in (events[:10], events[10:20]):
                pub.publish(batch, embeddings=embeddings)
                assert pub.flush(10) and pub.spooled == 0
            assert stream_ids(admin, camera_stream("refused")) == [e.event_id for e in events[:20]]
            assert [r.levelname for r in caplog.records] == ["ERROR"]
            assert "the events themselves are delivered" in caplog.records[0].getMessage()
            assert metric("vigil_publish_errors_total", reason="embedding") == lost_before + 20

            admin.acl_setuser("vigil", enabled=True, keys=["vigil:emb:*", "vigil:spaces"])  # added to what it may touch
            pub.publish(events[20:], embeddings=embeddings)
            assert pub.flush(10)
            pub.close()
            assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
        ids = [e.event_id for e in events]
        assert stream_ids(admin, camera_stream("refused")) == ids
        assert [i for i in stream_ids(admin, EVENTS_STREAM) if i in set(ids)] == ids
        assert (
            sum(metric("vigil_publish_errors_total", reason=r) for r in ("ResponseError", "NoPermissionError"))
            == all_errors_before
        ), "no event write failed"
        found = EventClient(url).search(FALL_QUERY, MINILM_SPACE, encode=minilm, count=30)
        assert {m.event.event_id for m in found} == set(ids[20:])
        admin.close()


# --- the index's search against Redis: filters, window, paging, spaces kept apart -----------------

T0 = 1_790_000_000.0


def at_angle(degrees: float) -> np.ndarray:
    """A unit vector ``degrees`` away from (1, 0, 0): its cosine to the query below is cos(degrees)."""
    r = np.radians(degrees)
    return np.asarray([np.cos(r), np.sin(r), 0.0], np.float32)


QUERY = at_angle(0)
ROWS = [  # event id, camera, kind, captured (s after T0), degrees from QUERY; stored in this order
    ("lobby-old", "lobby", "object", 0.0, 5),
    ("dock-clip", "dock", "clip", 10.0, 10),
    ("lobby-clip", "lobby", "clip", 20.0, 20),
    ("dock-object", "dock", "object", 30.0, 30),
    ("lobby-new", "lobby", "object", 40.0, 40),
]


@pytest.fixture(scope="module")
def small_index() -> Iterator[EmbeddingIndex]:
    with EmbeddedRedis() as s:
        index = EmbeddingIndex(redis.Redis.from_url(s.url))
        for event_id, camera, kind, dt, degrees in ROWS:
            index.add(event_id, camera, kind, "person", T0 + dt, at_angle(degrees), MINILM_SPACE)
        yield index


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["lobby-old", "dock-clip", "lobby-clip", "dock-object", "lobby-new"]),
        ({"camera": "lobby"}, ["lobby-old", "lobby-clip", "lobby-new"]),
        ({"camera": "lob"}, []),  # a camera is matched whole, not by its start
        ({"kinds": ["clip"]}, ["dock-clip", "lobby-clip"]),
        ({"kinds": ["clip", "object"], "camera": "dock"}, ["dock-clip", "dock-object"]),
        ({"since": T0 + 20}, ["lobby-clip", "dock-object", "lobby-new"]),  # capture time, included
        ({"since": T0 + 20, "camera": "lobby", "kinds": ["object"]}, ["lobby-new"]),
        ({"window": 2}, ["dock-object", "lobby-new"]),  # the two stored last
        ({"window": 2, "camera": "lobby"}, ["lobby-clip", "lobby-new"]),
        ({"count": 2}, ["lobby-old", "dock-clip"]),
    ],
)
def test_search_filters(small_index: EmbeddingIndex, filters: dict[str, Any], expected: list[str]) -> None:
    hits = small_index.search(QUERY * 3.0, MINILM_SPACE, **filters)  # a query need not be unit length
    assert [h.event_id for h in hits] == expected  # best first: each is further from the query than the last
    for hit in hits:
        _id, camera, kind, dt, degrees = next(r for r in ROWS if r[0] == hit.event_id)
        assert hit.score == pytest.approx(np.cos(np.radians(degrees)), abs=1e-3)
        assert (hit.camera, hit.kind, hit.label, hit.captured_at) == (camera, kind, "person", T0 + dt)


def test_spaces_are_kept_apart(server: EmbeddedRedis) -> None:
    """Vectors of another space are never compared with a query, however close their numbers."""
    index = EmbeddingIndex(redis.Redis.from_url(server.url))
    index.add("text-a", "lobby", "clip", "fall", T0, at_angle(30), MINILM_SPACE)
    index.add("text-b", "lobby", "clip", "fall", T0, at_angle(60), MINILM_SPACE)
    index.add("image-a", "lobby", "object", "person", T0, at_angle(0), "clip:ViT-B-32")
    assert [h.event_id for h in index.search(QUERY, MINILM_SPACE)] == ["text-a", "text-b"]
    assert [h.event_id for h in index.search(QUERY, "clip:ViT-B-32")] == ["image-a"]
    assert index.search(QUERY, "clip:other") == []
    assert index.spaces() == {MINILM_SPACE: 2, "clip:ViT-B-32": 1}
    with pytest.raises(ValueError, match="the minilm-384 vectors stored have 3 values, the query 4"):
        index.search(np.ones(4), MINILM_SPACE)


def test_paging_reads_every_embedding_once(server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 3 over 10 embeddings that expire in the same millisecond, and one removed meanwhile
    (expired): every other one is scored exactly once."""
    monkeypatch.setattr(search, "PAGE", 3)
    client = redis.Redis.from_url(server.url)
    index = EmbeddingIndex(client)
    for i in range(10):
        index.add(f"e{i}", "lobby", "object", "person", T0, at_angle(i * 10), MINILM_SPACE)
    client.zadd(INDEXES["embedding"], dict.fromkeys(client.zrange(INDEXES["embedding"], 0, -1), 4e12))
    client.delete(embedding_key(MINILM_SPACE, "lobby", "object", "e4"))
    hits = index.search(QUERY, MINILM_SPACE, count=100)
    assert [h.event_id for h in hits] == [f"e{i}" for i in range(10) if i != 4]


# --- search, through the client and the command line, with real MiniLM vectors -------------------


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return text_encoder(MINILM_SPACE, None)


@pytest.fixture(scope="module")
def scenes(
    redis_server: EmbeddedRedis, minilm: TextEncoder, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Event]:
    """Five events on two cameras, each embedded as the MiniLM vector of a caption of what it shows,
    and 150 more on a third camera, all published at once (random vectors)."""
    spool = tmp_path_factory.mktemp("spool")
    events: dict[str, Event] = {}
    for seq, (name, (camera, kind, label, _caption)) in enumerate(SCENES.items()):
        events[name] = sample_event(camera, seq, label).model_copy(update={"kind": kind})
    vectors = minilm([caption for *_rest, caption in SCENES.values()])
    embeddings = {events[n].event_id: EventEmbedding(v, MINILM_SPACE) for n, v in zip(SCENES, vectors, strict=True)}
    for camera in ("lobby", "dock"):
        publish(redis_server.url, spool, camera, [[e for e in events.values() if e.camera_id == camera]], embeddings)
    burst = [sample_event("burst", i) for i in range(150)]
    publish(redis_server.url, spool, "burst", [burst], random_embeddings(burst, seed=1))
    events["burst-first"] = burst[0]
    return events


def test_client_finds_the_fallen_person(
    redis_server: EmbeddedRedis, scenes: dict[str, Event], minilm: TextEncoder
) -> None:
    client = EventClient(redis_server.url)
    try:
        matches = client.search(FALL_QUERY, encode=minilm, count=3)  # the one space stored
        assert matches[0].event == scenes["fall"]  # the whole event, read back from its stream
        assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
        assert matches[0].score > matches[1].score + 0.1
        dock = client.search(FALL_QUERY, MINILM_SPACE, encode=minilm, camera="dock")
        assert {m.event.event_id for m in dock} == {scenes["corridor"].event_id, scenes["dog"].event_id}
        clips = client.search("a lorry being emptied", MINILM_SPACE, encode=minilm, kinds=["clip"], count=1)
        assert [m.event for m in clips] == [scenes["truck"]]
    finally:
        client.close()


def test_client_reads_back_an_event_published_in_a_long_batch(
    redis_server: EmbeddedRedis, scenes: dict[str, Event]
) -> None:
    """The first of 150 events Redis took in one batch: its embedding was stored after all of them."""
    first = scenes["burst-first"]
    vector = random_embeddings([first], seed=1)[first.event_id].vector
    client = EventClient(redis_server.url)
    try:
        (match,) = client.search(vector, MINILM_SPACE, camera="burst", count=1)
        assert match.event == first and match.score == pytest.approx(1.0, abs=1e-3)
    finally:
        client.close()


def vigil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, "events", "search", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_prints_the_fallen_person_first(
    redis_server: EmbeddedRedis, scenes: dict[str, Event], tmp_path: Path
) -> None:
    result = vigil(FALL_QUERY, "--json", "--count", "3", "--redis-url", redis_server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert Event.model_validate(docs[0]["event"]) == scenes["fall"]
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)
    assert result.stderr.strip() == "3 events"


def test_cli_prints_a_table_of_one_cameras_events(
    redis_server: EmbeddedRedis, scenes: dict[str, Event], tmp_path: Path
) -> None:
    result = vigil("a dog", "--camera", "dock", "--redis-url", redis_server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["score", "time", "(UTC)", "camera", "kind", "label", "event", "id"]
    dog = scenes["dog"]
    assert first.split()[3:] == ["dock", "object", "dog", dog.event_id]
    assert first.split()[1] == dog.ts[:10]
    assert scenes["corridor"].event_id in second


def test_cli_with_nothing_to_search_exits_1_in_one_line(tmp_path: Path) -> None:
    with EmbeddedRedis() as empty:
        result = vigil(FALL_QUERY, "--redis-url", empty.url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: no event embeddings in Redis: nothing to search"]


def test_cli_without_redis_exits_1_and_never_prints_the_password(tmp_path: Path) -> None:
    url = f"redis://vigil:pa55-Secret@127.0.0.1:{free_port()}/0"
    result = vigil(FALL_QUERY, "--redis-url", url, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: Redis at redis://***@127.0.0.1:") and "pa55-Secret" not in result.stdout + line


def test_several_spaces_need_a_choice(server: EmbeddedRedis, tmp_path: Path) -> None:
    """Vectors of two spaces: a search names one (the CLI and the client say which there are), and
    finds only that space's events."""
    index = EmbeddingIndex(redis.Redis.from_url(server.url))
    index.add("text-event", "lobby", "clip", "fall", 1.0, np.ones(384, np.float32), MINILM_SPACE)
    index.add("image-event", "lobby", "object", "person", 2.0, np.ones(512, np.float32), "clip:ViT-B-32:laion2b")
    result = vigil(FALL_QUERY, "--redis-url", server.url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: embeddings of several spaces are stored; choose one with --space: "
        "clip:ViT-B-32:laion2b (1), minilm-384 (1)"
    ]
    result = vigil(FALL_QUERY, "--space", "clip:RN50", "--redis-url", server.url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no event embeddings in space clip:RN50 in Redis (stored: clip:ViT-B-32:laion2b (1), minilm-384 (1))"
    ]
    client = EventClient(server.url)
    with pytest.raises(ValueError, match="several spaces"):
        client.search(np.ones(384))
    with pytest.raises(NothingToSearch, match="no event embeddings in space clip:RN50"):
        client.search(np.ones(1024), "clip:RN50")
    client.close()


def test_cli_embeds_a_clip_space_query_with_the_configs_clip_model(server: EmbeddedRedis, tmp_path: Path) -> None:
    """Events embedded by a (tiny, untrained) CLIP model: the query goes through the text tower of the
    config's models.zero_shot.backend, which must be the model the space is named after."""
    from pipeline.core.config import HfClipBackend
    from tests.support import tiny_clip
    from workers.zero_shot import load_clip

    backend = HfClipBackend(name_or_path=str(tiny_clip.save_hf_clip(tmp_path / "tiny-clip")))
    space = clip_space(backend)
    assert space == "clip:tiny-clip"
    captions = ["a red car", "a person lying down", "an empty corridor"]
    events = [sample_event("clipcam", i) for i in range(3)]
    vectors = load_clip(backend, allow_download=False).embed_texts(captions)
    embeddings = {e.event_id: EventEmbedding(v, space) for e, v in zip(events, vectors, strict=True)}
    publish(server.url, tmp_path, "clipcam", [events], embeddings)
    config = tmp_path / "vigil.yaml"
    zero_shot = (
        f"{{backend: {{kind: hf_clip, name_or_path: '{backend.name_or_path}'}}, scenes: {{street: [a street]}}}}"
    )
    config.write_text(
        f"cameras:\n  - {{id: clipcam, url: '{tmp_path}/none.mp4'}}\n"
        f"models:\n  detector: {{weights: yolo11n.yaml}}\n  zero_shot: {zero_shot}\n"
    )
    result = vigil("a person lying down", "--json", "--config", str(config), "--redis-url", server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout.splitlines()[0])
    assert first["event"]["event_id"] == events[1].event_id and first["score"] == pytest.approx(1.0, abs=1e-3)
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text().replace("kind: hf_clip", "kind: open_clip").replace("name_or_path", "model"))
    result = vigil("a person lying down", "--config", str(other), "--redis-url", server.url, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "models.zero_shot.backend embeds into clip:" in result.stderr
        and "the events are in clip:tiny-clip" in result.stderr
    )


def test_cli_refuses_a_bad_time_in_one_line(tmp_path: Path) -> None:
    result = vigil(FALL_QUERY, "--since", "yesterday", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: not a time: 'yesterday' (use ISO-8601 like 2026-11-22T10:00:00Z, or 15m, 2h, 1d)"
    ]


def test_a_revised_embedding_replaces_the_stored_one_and_keeps_its_expiry(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    """An incident's start event is searched by what the incident showed: a revision sent with a
    later batch replaces its stored embedding (same key, same expiry, nothing added to the budget),
    one sent while the event still waits replaces the waiting one, and one for an embedding no
    longer stored brings nothing back."""
    client = redis.Redis.from_url(server.url)
    e = np.eye(384, dtype=np.float32)
    first, second, gone = (sample_event("rev", i) for i in range(3))
    pub = EventPublisher(server.url, "rev", tmp_path / "rev.sqlite")
    try:
        pub.publish([first, gone], embeddings={first.event_id: EventEmbedding(e[0], MINILM_SPACE),
                                               gone.event_id: EventEmbedding(e[0], MINILM_SPACE)})  # fmt: skip
        assert pub.flush(10)
        key = embedding_key(MINILM_SPACE, "rev", first.kind, first.event_id)
        ttl, budget = client.ttl(key), tracked_bytes(client)
        client.delete(embedding_key(MINILM_SPACE, "rev", gone.kind, gone.event_id))
        # While the second event waits (unsent), its embedding is revised too.
        pub.publish([second], embeddings={second.event_id: EventEmbedding(e[1], MINILM_SPACE)},
                    revised=[(first, EventEmbedding(e[2], MINILM_SPACE)), (second, EventEmbedding(e[3], MINILM_SPACE)),
                             (gone, EventEmbedding(e[2], MINILM_SPACE))])  # fmt: skip
        assert pub.flush(10)
    finally:
        pub.close()
    index = EmbeddingIndex(client)
    best = {q: index.search(e[q], MINILM_SPACE, count=1)[0] for q in (2, 3)}
    assert (best[2].event_id, best[3].event_id) == (first.event_id, second.event_id)
    assert best[2].score > 0.999 and best[3].score > 0.999
    assert 0 < client.ttl(key) <= ttl
    assert tracked_bytes(client)["embedding"] == budget["embedding"] // 2 * 3, "three embeddings added, revisions none"
    assert not client.exists(embedding_key(MINILM_SPACE, "rev", gone.kind, gone.event_id))
    client.close()
