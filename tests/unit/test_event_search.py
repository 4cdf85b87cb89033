"""Searching event embeddings: the float16 storage format, exact cosine ranking of a page of
embeddings, what is refused, the names of CLIP spaces, and the budget's oldest-first order across
snapshots and embeddings. What Redis does (the filters, paging, spaces kept apart) is tested
against a real redis-server in tests/integration/test_event_search.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.core.config.zero_shot import HfClipBackend, OpenClipBackend, VigilClipBackend
from pipeline.events.budget import DEDUPE_KEY, EMBEDDING, SNAPSHOT, Tracked, plan_evictions
from pipeline.events.embeddings import HEADER, PackedEmbedding, check_space, clip_space, pack, unpack
from pipeline.events.search import Found, Ranking

MINILM = "minilm-384"
T0 = 1_790_000_000.0
TTL_MS = 3_600_000


def at_angle(degrees: float) -> np.ndarray:
    """A unit vector ``degrees`` away from (1, 0, 0)."""
    r = np.radians(degrees)
    return np.asarray([np.cos(r), np.sin(r), 0.0], np.float32)


def page(packed: list[PackedEmbedding], dim: int) -> tuple[bytes, bytes]:
    """What a search's script returns for these matches: their headers and vectors back to back,
    and their index members (``<written_ms>:<seq>:<bytes>:<key>``, written at 1,000 + i ms) joined by 0x1e."""
    size = HEADER.size + 2 * dim
    members = [f"{1_000 + i}:{i:015d}:1200:{p.key}".encode() for i, p in enumerate(packed)]
    return b"".join(p.value[:size] for p in packed), b"\x1e".join(members)


def event_id(found: Found) -> str:
    return found.key.decode().rsplit(":", 1)[1]


@pytest.mark.parametrize("dim", [3, 384, 512])
def test_an_embedding_round_trips_as_float16_with_its_metadata(dim: int) -> None:
    v = np.random.default_rng(dim).normal(size=dim).astype(np.float32) * 7.0
    packed = pack("e1", "lobby", "object", "person [east]", T0 + 0.125, v, "clip:ViT-B-32:laion2b")
    space, label, captured_at, back = unpack(packed.value)
    assert (space, label, captured_at) == ("clip:ViT-B-32:laion2b", "person [east]", T0 + 0.125)
    assert back.dtype == np.float32 and back.shape == (dim,)
    np.testing.assert_allclose(back, v / np.linalg.norm(v), atol=1e-3)  # stored normalised, 3 decimal digits
    assert len(packed.value) < 2 * dim + 60  # two bytes a dimension, and a few for what it is


def test_ranking_orders_by_exact_cosine_best_first() -> None:
    angles = {"far": 80.0, "near": 10.0, "opposite": 180.0, "same": 0.0, "mid": 45.0}
    packed = [
        pack(name, "lobby", "object", "x", T0 + i, at_angle(a), MINILM) for i, (name, a) in enumerate(angles.items())
    ]
    ranking = Ranking(at_angle(0.0), count=4)
    assert ranking.add(*page(packed, 3)) == 5
    best = ranking.best()
    assert [event_id(f) for f in best] == ["same", "near", "mid", "far"]
    for found in best:
        assert found.score == pytest.approx(np.cos(np.radians(angles[event_id(found)])), abs=1e-3)
    assert (best[0].key.decode(), best[0].captured_at, best[0].written_ms) == (packed[3].key, T0 + 3, 1_003)


def test_ranking_keeps_the_best_across_pages_and_stops_at_a_limit() -> None:
    first = [pack(f"a{d}", "lobby", "clip", "x", T0, at_angle(d), MINILM) for d in (50, 5, 70)]
    second = [pack(f"b{d}", "dock", "clip", "x", T0, at_angle(d), MINILM) for d in (1, 60, 30)]
    ranking = Ranking(at_angle(0.0), count=3)
    ranking.add(*page(first, 3))
    assert ranking.add(*page(second, 3), 2) == 2  # the third of the page is past the window
    assert [event_id(f) for f in ranking.best()] == ["b1", "a5", "a50"]
    assert ranking.scored == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"vector": np.zeros(3, np.float32)}, "finite and non-zero"),
        ({"vector": np.array([1.0, np.nan, 0.0])}, "finite and non-zero"),
        ({"vector": np.ones((2, 3), np.float32)}, "one vector"),
        ({"camera": "a:b"}, "camera 'a:b'"),
        ({"kind": ""}, "kind ''"),
        ({"space": "has blank"}, "not a space name"),
    ],
)
def test_bad_embeddings_are_refused(args: dict[str, Any], message: str) -> None:
    call: dict[str, Any] = {"event_id": "e", "camera": "lobby", "kind": "object", "label": "person", "ts": T0}
    call |= {"vector": at_angle(0), "space": MINILM} | args
    with pytest.raises(ValueError, match=message):
        pack(**call)


@pytest.mark.parametrize(
    ("backend", "space"),
    [
        (VigilClipBackend(weights="models/demo/clip.pt"), "minilm-384"),
        (OpenClipBackend(model="ViT-B-32", pretrained="laion2b_s34b_b79k"), "clip:ViT-B-32:laion2b_s34b_b79k"),
        (OpenClipBackend(model="ViT-B-32", pretrained="/models/vit-b-32.pt"), "clip:ViT-B-32:vit-b-32.pt"),
        (OpenClipBackend(model="local-dir:/models/open_clip ViT-B-32"), "clip:open_clip_ViT-B-32"),
        (OpenClipBackend(model="hf-hub:laion/CLIP-ViT-B-32"), "clip:laion/CLIP-ViT-B-32"),
        (HfClipBackend(name_or_path="openai/clip-vit-base-patch32"), "clip:openai/clip-vit-base-patch32"),
        (HfClipBackend(name_or_path="/models/clip-vit-base-patch32"), "clip:clip-vit-base-patch32"),
    ],
)
def test_each_clip_backend_names_its_space(backend: Any, space: str) -> None:
    assert clip_space(backend) == space
    check_space(space)


def tracked(kind: str, name: str, written_s: float, nbytes: int) -> Tracked:
    written = int(T0 * 1000 + written_s * 1000)
    return Tracked(kind, f"{written}:{1:015d}:{nbytes}:{name}", name, nbytes, written, 1, written + TTL_MS)


def test_budget_removes_snapshots_and_embeddings_in_the_order_they_were_written() -> None:
    """Over the budget the oldest go first whatever their kind, and de-duplication keys only after both."""
    snapshots = [tracked(SNAPSHOT, f"s{i}", i * 10, 30_000) for i in range(3)]  # written at 0, 10, 20 s
    embeddings = [tracked(EMBEDDING, f"e{i}", i * 10 + 5, 1_200) for i in range(3)]  # at 5, 15, 25 s
    dedupe = [tracked(DEDUPE_KEY, "d0", -700, 300)]  # past the retry horizon
    total = sum(t.nbytes for t in (*snapshots, *embeddings, *dedupe))
    now_ms = int(T0 * 1000) + 60_000
    plan = plan_evictions(snapshots, dedupe, total, total - 31_000, now_ms, 600_000, embeddings)
    assert [t.key for t in plan.evict] == ["s0", "e0"]  # 31,200 bytes freed: enough
    plan = plan_evictions(snapshots, dedupe, total, 100, now_ms, 600_000, embeddings)
    assert [t.key for t in plan.evict] == ["s0", "e0", "s1", "e1", "s2", "e2", "d0"]
