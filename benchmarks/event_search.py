"""Event search benchmark: embeddings searched per second, stored per second, and Redis memory each.

    .venv/bin/python -m benchmarks.event_search [--embeddings 100000] [--dims 384 512] [--rounds 5]

Fills a private redis-server (started here, on a free port) with random unit vectors through
``EmbeddingIndex.write`` (10 cameras, 2 kinds), then times ``EmbeddingIndex.search`` over all of
them, over one camera's, and over the 10,000 most recent. Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import redis

from pipeline.events.budget import tracked_bytes
from pipeline.events.embeddings import pack
from pipeline.events.search import PAGE, EmbeddingIndex
from pipeline.runtime.redis_server import EmbeddedRedis

CAMERAS = 10
WRITE_BATCH = 500


def fill(index: EmbeddingIndex, n: int, dim: int, space: str) -> float:
    """Store ``n`` random embeddings; returns embeddings stored per second."""
    rng = np.random.default_rng(dim)
    t0 = time.perf_counter()
    for start in range(0, n, WRITE_BATCH):
        vectors = rng.normal(size=(min(WRITE_BATCH, n - start), dim)).astype(np.float32)
        batch = [
            pack(f"{space}-{start + i}", f"cam{(start + i) % CAMERAS}", ("object", "clip")[i % 2], "person",
                 time.time(), v, space)
            for i, v in enumerate(vectors)
        ]  # fmt: skip
        written = index.write(batch)
        assert written.added == len(batch), written
    return n / (time.perf_counter() - t0)


def timed(rounds: int, search: object) -> float:
    """Median seconds of ``rounds`` calls of ``search``."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        search()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(url: str, n: int, dim: int, rounds: int) -> list[tuple[str, str]]:
    client = redis.Redis.from_url(url)
    client.flushall()
    used0 = int(client.info("memory")["used_memory"])
    index = EmbeddingIndex(client, max_embeddings=n, memory_budget_mb=4096)
    space = f"bench-{dim}"
    write_rate = fill(index, n, dim, space)
    used = int(client.info("memory")["used_memory"]) - used0
    q = np.random.default_rng(0).normal(size=dim).astype(np.float32)
    client.config_resetstat()
    all_s = timed(rounds, lambda: index.search(q, space, count=10))
    page_ms = client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"] / 1000
    cam_s = timed(rounds, lambda: index.search(q, space, camera="cam3", count=10))
    recent_s = timed(rounds, lambda: index.search(q, space, count=10, window=10_000))
    client.close()
    return [
        (f"{dim}-d: stored per second (batches of {WRITE_BATCH})", f"{write_rate:,.0f} embeddings/s"),
        (f"{dim}-d: Redis memory per embedding (used_memory)", f"{used / n:,.0f} bytes"),
        (
            f"{dim}-d: ... as the budget counts it",
            f"{tracked_bytes(redis.Redis.from_url(url))['embedding'] / n:,.0f} bytes",
        ),
        (f"{dim}-d: search all {n:,}", f"{all_s * 1000:,.0f} ms = {n / all_s:,.0f} events/s"),
        (f"{dim}-d: Redis busy per page of {PAGE:,} (one script)", f"{page_ms:.1f} ms"),
        (f"{dim}-d: search one camera ({n // CAMERAS:,} of {n:,})", f"{cam_s * 1000:,.0f} ms"),
        (f"{dim}-d: search the 10,000 most recent", f"{recent_s * 1000:,.0f} ms = {10_000 / recent_s:,.0f} events/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embeddings", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        rows = [row for dim in args.dims for row in bench(server.url, args.embeddings, dim, args.rounds)]
    width = max(len(name) for name, _ in rows)
    print(f"{'figure':{width}}  value")
    for name, value in rows:
        print(f"{name:{width}}  {value}")


if __name__ == "__main__":
    main()
