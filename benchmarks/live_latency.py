"""Live-mode latency: capture -> processed for an RTSP camera, with a fast and a slow detector.

    .venv/bin/python -m benchmarks.live_latency [--frames 40]

A real GStreamer RTSP server (10 fps), the whole pipeline on CPU. With the slow detector (YOLO at
1280 px, several times slower than the camera) the live camera drops stale frames instead of
queueing them, so latency stays near one processing time instead of growing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray

from pipeline.core.config import parse_config
from pipeline.ml.synth.dataset import ensure_video
from pipeline.runtime.driver import Pipeline, init_ray
from pipeline.runtime.redis_server import EmbeddedRedis, free_port
from tests.support.rtsp import RtspServer


def scenario(url: str, imgsz: int, frames: int, tmp: Path, redis_url: str) -> str:
    cfg = parse_config(
        {
            "cameras": [{"id": "live", "url": url, "fps": 10}],
            "metrics": {"port": 0},
            "models": {"detector": {"imgsz": imgsz}},
            "events": {"spool": {"dir": str(tmp / f"spool{imgsz}")}},
            "ray": {"num_cpus": 2},
        }
    )
    init_ray(cfg)
    pipeline = Pipeline(cfg, redis_url)
    pipeline.start()
    samples: list[float] = []
    t0 = time.monotonic()
    try:
        while len(samples) < frames and time.monotonic() - t0 < 600:
            [s] = pipeline.statuses()
            if s.last_latency_s is not None and s.frames_processed > len(samples):
                samples.append(s.last_latency_s)
            time.sleep(0.05)
        [s] = pipeline.statuses()
        elapsed = time.monotonic() - t0
    finally:
        pipeline.stop()
    steady = samples[5:]
    first, last = steady[: len(steady) // 2], steady[len(steady) // 2 :]
    return (
        f"| YOLO11n @{imgsz} | {s.frames_processed / elapsed:.1f} | {s.frames_dropped / max(1, s.frames_decoded):.0%} "
        f"| {statistics.median(steady) * 1000:.0f} ms | {statistics.quantiles(steady, n=20)[18] * 1000:.0f} ms "
        f"| {statistics.mean(first) * 1000:.0f} → {statistics.mean(last) * 1000:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis_server:
        tmp = Path(tmp_name)
        server = RtspServer(ensure_video(tmp / "v.mp4", seed=1, scene="street", seconds=10))
        server.start(port=free_port())
        try:
            rows = [scenario(server.url, imgsz, args.frames, tmp, redis_server.url) for imgsz in (320, 1280)]
        finally:
            server.close()
            ray.shutdown()
    print("| detector | processed fps | frames dropped | latency p50 | latency p95 | mean, 1st → 2nd half |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
