"""Live cameras with and without the camera host's call coalescing (placement fused's host_calls_per_replica).

    .venv/bin/python -m benchmarks.live_coalescing [--cameras 4 8] [--seconds 30] [--config configs/bench-cpu.yaml]

N live cameras (the bench video looping at its own 10 fps: newest frame only, stale frames
dropped and counted) on the config's models in vision workers (``ray.placement: fused``), once
with ``ray.host_calls_per_replica: 0`` (a call per frame) and once with 1 (coalesced). Prints a
Markdown table (docs/performance.md).

Live cameras make a call per frame whatever the setting (it applies to file-mode cameras only):
coalescing gained them no latency and cost overloaded live cameras frames (docs/performance.md).
So both rows of a pair run the same code; the script still shows both, to check that stays so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import ray

from pipeline.bench.spec import default_video
from pipeline.bench.stats import quantiles_s
from pipeline.bench.vigil import warm_up, window
from pipeline.core.config import VigilConfig, load_config
from pipeline.runtime.driver import Pipeline, init_ray
from pipeline.runtime.redis_server import EmbeddedRedis


def scenario(base: VigilConfig, cameras: int, calls: int, seconds: float, tmp: Path, in_flight: int) -> dict[str, Any]:
    video = default_video()
    cfg = base.model_copy(
        update={
            "cameras": tuple(
                base.cameras[0].model_copy(
                    update={"id": f"cam{i}", "url": str(video), "fps": 10, "loop": True, "max_in_flight": in_flight}
                )
                for i in range(cameras)
            ),
            # Coalescing applies to vision workers only: the scenario runs placement fused whatever the
            # config says (its models and other Ray settings are kept).
            "ray": base.ray.model_copy(update={"placement": "fused", "host_calls_per_replica": calls}),
            "metrics": base.metrics.model_copy(update={"port": 0}),
            "events": base.events.model_copy(
                update={"spool": base.events.spool.model_copy(update={"dir": tmp / f"spool-{cameras}-{calls}"})}
            ),
        }
    )
    with EmbeddedRedis() as redis_server:
        init_ray(cfg, log_to_driver=False)
        pipeline = Pipeline(cfg, redis_server.url)
        try:
            pipeline.start()
            warm_up(pipeline)
            before = pipeline.statuses()
            result = window(pipeline, f"http://127.0.0.1:{pipeline.metrics_port}/metrics", seconds, lambda **_: None)
            after = pipeline.statuses()
        finally:
            pipeline.stop()
            ray.shutdown()
    decoded = sum(s.frames_decoded for s in after) - sum(s.frames_decoded for s in before)
    dropped = sum(s.frames_dropped for s in after) - sum(s.frames_dropped for s in before)
    return {"fps": result["fps"], "dropped": dropped / max(1, decoded), **quantiles_s(result["latency_samples"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--config", type=Path, default=Path("configs/bench-cpu.yaml"))
    parser.add_argument("--calls", type=int, nargs="+", default=[0, 1], help="host_calls_per_replica values")
    parser.add_argument("--in-flight", type=int, default=2, help="cameras[].max_in_flight")
    args = parser.parse_args()
    base = load_config(args.config)
    base = base.model_copy(update={"models": base.models.model_copy(update={"crops": None})})
    print(f"in flight per camera: {args.in_flight}")
    print("| cameras (10 fps each) | calls | processed fps | dropped | latency p50 / p95 / p99 |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for cameras in args.cameras:
            for calls in args.calls:
                r = scenario(base, cameras, calls, args.seconds, Path(tmp), args.in_flight)
                how = "a call per frame" if calls == 0 else f"coalesced, {calls} per replica"
                lat = " / ".join(f"{r[k] * 1000:.0f}" for k in ("latency_p50_s", "latency_p95_s", "latency_p99_s"))
                print(f"| {cameras} | {how} | {r['fps']:.1f} | {r['dropped']:.0%} | {lat} ms |", flush=True)


if __name__ == "__main__":
    main()
