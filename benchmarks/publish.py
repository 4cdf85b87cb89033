"""Publish-path benchmark: throughput, publish->XADD latency, and spool flush rate after an outage.

    .venv/bin/python -m benchmarks.publish [--events 5000] [--outage-events 20000]

Runs against a private redis-server (started here, on a free port). Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import redis

from pipeline.core.messages import Event
from pipeline.events.publisher import EventPublisher, camera_stream
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import sample_event


def event(seq: int) -> Event:
    return sample_event("bench", seq)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def steady(url: str, spool: Path, n: int, rate_hz: float) -> tuple[float, float]:
    """Events at ``rate_hz`` one by one. Latency: event creation -> a Pub/Sub subscriber has it (the
    same Lua script XADDs and PUBLISHes, so this is creation -> durable in the stream, plus one hop)."""
    client = redis.Redis.from_url(url)
    sub = client.pubsub()
    sub.subscribe(camera_stream("bench"))
    sub.get_message(timeout=1)
    latencies: list[float] = []

    def listen() -> None:
        while len(latencies) < n:
            msg = sub.get_message(timeout=1)
            if msg and msg["type"] == "message":
                latencies.append(time.time() - Event.model_validate_json(msg["data"]).captured_at)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    pub = EventPublisher(url, "bench", spool / "steady.sqlite")
    period = 1.0 / rate_hz
    t0 = time.perf_counter()
    for i in range(n):
        pub.publish([event(i)])
        time.sleep(max(0.0, t0 + (i + 1) * period - time.perf_counter()))
    pub.flush(60)
    listener.join(timeout=30)
    pub.close()
    sub.close()
    client.delete(camera_stream("bench"), "vigil:events")
    client.close()
    return percentile(latencies, 50), percentile(latencies, 99)


def burst(url: str, spool: Path, n: int) -> float:
    pub = EventPublisher(url, "bench", spool / "burst.sqlite")
    t0 = time.perf_counter()
    for i in range(0, n, 10):
        pub.publish([event(j) for j in range(i, min(n, i + 10))])
    pub.flush(120)
    rate = n / (time.perf_counter() - t0)
    pub.close()
    return rate


def outage(server: EmbeddedRedis, spool: Path, n: int) -> tuple[float, float]:
    pub = EventPublisher(server.url, "bench", spool / "outage.sqlite", retry_cap_s=0.2)
    server.kill()
    t0 = time.perf_counter()
    for i in range(0, n, 10):
        pub.publish([event(j) for j in range(i, min(n, i + 10))])
    spool_rate = n / (time.perf_counter() - t0)
    server.start()
    t1 = time.perf_counter()
    pub.flush(300)
    flush_rate = n / (time.perf_counter() - t1)
    pub.close()
    return spool_rate, flush_rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0, help="steady-state events/s for the latency run")
    parser.add_argument("--outage-events", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        spool = Path(tmp)
        p50, p99 = steady(server.url, spool, min(args.events, 2000), args.rate)
        throughput = burst(server.url, spool, args.events)
        spool_rate, flush_rate = outage(server, spool, args.outage_events)
    print(f"{'figure':48} value")
    print(f"{'publish throughput (burst, spool + Lua XADD)':48} {throughput:,.0f} events/s")
    print(f"{f'event -> XADD+PUBLISH seen, {args.rate:.0f} ev/s, p50':48} {p50 * 1000:.2f} ms")
    print(f"{f'event -> XADD+PUBLISH seen, {args.rate:.0f} ev/s, p99':48} {p99 * 1000:.2f} ms")
    print(f"{'spooling rate while Redis is down':48} {spool_rate:,.0f} events/s")
    print(f"{'spool flush rate after Redis returns':48} {flush_rate:,.0f} events/s")


if __name__ == "__main__":
    main()
