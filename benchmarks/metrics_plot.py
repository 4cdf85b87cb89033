"""Draw docs/metrics-run.png: the main dashboard series from a real run scraped by a real Prometheus.

    .venv/bin/python -m benchmarks.metrics_plot [--seconds 60] [--out docs/metrics-run.png]

Runs the demo cameras (generated videos, untrained models) with an embedded Redis, the shipped
Prometheus config scraping every second, then plots Prometheus range queries with matplotlib.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ray

from pipeline.core.config import parse_config
from pipeline.ml.synth.dataset import ensure_video
from pipeline.runtime.driver import Pipeline, init_ray
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.prometheus import Prometheus, wait_for

SERIES = (
    (
        "Frames/s per camera",
        [
            ("sum by (camera) (rate(vigil_frames_decoded_total[5s]))", "in {camera}"),
            ("sum by (camera) (rate(vigil_frames_processed_total[5s]))", "processed {camera}"),
        ],
        "frames/s",
    ),
    (
        "Capture to publish latency",
        [
            (f"histogram_quantile({q}, sum by (le) (rate(vigil_e2e_latency_seconds_bucket[10s])))", f"p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ],
        "seconds",
    ),
    ("Events/s by kind", [("sum by (kind) (rate(vigil_events_published_total[10s]))", "{kind}")], "events/s"),
    ("CPU by actor type", [("sum by (actor) (rate(vigil_process_cpu_seconds_total[5s]))", "{actor}")], "cores"),
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--out", type=Path, default=Path("docs/metrics-run.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis_server:
        tmp = Path(tmp_name)
        videos = [
            ensure_video(tmp / "street.mp4", 1, "street"),
            ensure_video(tmp / "parking.mp4", 2, "parking", night=True),
        ]
        cfg = parse_config(
            {
                "cameras": [{"id": v.stem, "url": str(v), "fps": 5, "loop": True} for v in videos],
                "metrics": {"port": 0},
                "events": {"clip_min_confidence": 0.0, "update_interval_s": 2, "spool": {"dir": str(tmp / "spool")}},
                "ray": {"num_cpus": 2},
            }
        )
        init_ray(cfg)
        pipeline = Pipeline(cfg, redis_server.url)
        pipeline.start()
        prom = Prometheus(tmp, int(pipeline.metrics_port or 0))
        try:
            wait_for(prom.ready, 30, "prometheus")
            start = time.time()
            time.sleep(args.seconds)
            end = time.time()
            fig, axes = plt.subplots(len(SERIES), 1, figsize=(10, 3 * len(SERIES)), sharex=True)
            for ax, (title, queries, unit) in zip(axes, SERIES, strict=True):
                for expr, legend in queries:
                    for series in prom.query_range(expr, start, end, 1)["data"]["result"]:
                        xs = [float(t) - start for t, _ in series["values"]]
                        ys = [float(v) for _, v in series["values"]]
                        ax.plot(xs, ys, label=legend.format(**series["metric"]) if "{" in legend else legend)
                ax.set_title(title)
                ax.set_ylabel(unit)
                ax.legend(loc="upper right", fontsize=8)
                ax.grid(alpha=0.3)
            axes[-1].set_xlabel("seconds into the run")
            fig.suptitle(f"Vigil demo run: 2 cameras, CPU only ({args.seconds:.0f} s, Prometheus scrape every 1 s)")
            fig.tight_layout()
            args.out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(args.out, dpi=90)
            print(args.out)
        finally:
            prom.stop()
            pipeline.stop()
            ray.shutdown()


if __name__ == "__main__":
    main()
