"""``vigil bench``'s vigil mode: the real pipeline (decode -> detect + track -> ViT -> clip head ->
Redis) measured through its own metrics endpoint and camera statuses.

Throughput is frames processed (camera statuses) over the window. Latency is capture -> events
handed to the publisher for every frame, read as the change of ``vigil_e2e_latency_seconds``
over the window; its quantiles are interpolated inside the histogram's buckets (as Prometheus'
``histogram_quantile`` does), so they are also cross-checked against exact per-frame latencies
sampled from the camera statuses every 0.25 s.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline.bench.protocol import report as report_to_parent
from pipeline.bench.spec import ModeSpec, bench_cameras
from pipeline.bench.stats import quantiles_s
from pipeline.core.config import VigilConfig

Reporter = Callable[..., None]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WARMUP_FRAMES = 3
WARMUP_TIMEOUT_S = 180.0


def scrape(url: str) -> Samples:
    """Every ``vigil_`` sample of the /metrics endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("vigil_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def delta(before: Samples, after: Samples, name: str, **match: str) -> dict[tuple[tuple[str, str], ...], float]:
    """After minus before for the samples called ``name`` whose labels include ``match``."""
    out = {}
    for (n, labels), value in after.items():
        if n == name and all(dict(labels).get(k) == v for k, v in match.items()):
            out[labels] = value - before.get((n, labels), 0.0)
    return out


def by_label(samples: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    """Sum samples by one label's value."""
    out: dict[str, float] = {}
    for labels, value in samples.items():
        key = dict(labels).get(label, "")
        out[key] = out.get(key, 0.0) + value
    return out


def histogram_quantile(q: float, buckets: dict[str, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts keyed by ``le``."""
    points = sorted((float(le), count) for le, count in buckets.items())
    if not points or points[-1][1] <= 0:
        return None
    rank = q * points[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in points:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width > 0 else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def summarize(before: Samples, after: Samples) -> dict[str, Any]:
    """Latency quantiles, stage means, batch sizes and CPU by actor over the window."""
    e2e = by_label(delta(before, after, "vigil_e2e_latency_seconds_bucket"), "le")
    stage_sum = by_label(delta(before, after, "vigil_stage_latency_seconds_sum"), "stage")
    stage_n = by_label(delta(before, after, "vigil_stage_latency_seconds_count"), "stage")
    batch_sum = by_label(delta(before, after, "vigil_batch_size_sum"), "model")
    batch_n = by_label(delta(before, after, "vigil_batch_size_count"), "model")
    return {
        "latency_histogram": {f"p{round(q * 100)}_s": histogram_quantile(q, e2e) for q in (0.5, 0.95, 0.99)},
        "stage_mean_s": {k: stage_sum[k] / n for k, n in stage_n.items() if n > 0},
        "batch_mean": {k: batch_sum[k] / n for k, n in batch_n.items() if n > 0},
        "batches": batch_n,
        "cpu_s_by_actor": by_label(delta(before, after, "vigil_process_cpu_seconds_total"), "actor"),
        "model_cpu_s": by_label(delta(before, after, "vigil_model_cpu_seconds_total"), "model"),
        "camera_cpu_s": by_label(delta(before, after, "vigil_camera_cpu_seconds_total"), "step"),
    }


def run_vigil(spec: ModeSpec) -> dict[str, Any]:
    """The real pipeline on the spec's file cameras (the ``vigil`` mode)."""
    cfg = spec.cfg.model_copy(update={"cameras": bench_cameras(spec)})
    return measure_pipeline(cfg, spec.seconds, spec.workdir, report_to_parent)


def measure_pipeline(cfg: VigilConfig, seconds: float, workdir: Path, report: Reporter) -> dict[str, Any]:
    """Start Vigil on ``cfg``'s cameras, warm up, measure ``seconds``, stop. Embedded Redis."""
    import ray

    from pipeline.runtime.driver import Pipeline, init_ray
    from pipeline.runtime.redis_server import EmbeddedRedis

    spool = cfg.events.spool.model_copy(update={"dir": workdir / "spool"})
    cfg = cfg.model_copy(
        update={
            "metrics": cfg.metrics.model_copy(update={"host": "127.0.0.1", "port": 0}),
            "events": cfg.events.model_copy(update={"spool": spool}),
        }
    )
    with EmbeddedRedis() as redis_server:
        report(progress="starting Ray, loading models")
        init_ray(cfg, log_to_driver=False)
        pipeline = Pipeline(cfg, redis_server.url)
        try:
            pipeline.start()
            url = f"http://127.0.0.1:{pipeline.metrics_port}/metrics"
            report(progress="warming up")
            warm_up(pipeline)
            result = window(pipeline, url, seconds, report)
            if pipeline.placement is not None:  # what ray.placement resolved to on this machine
                result["placement"] = pipeline.placement.describe()
        finally:
            pipeline.stop()
            ray.shutdown()
    result.update(quantiles_s(result.pop("latency_samples")))
    result["latency_source"] = "camera statuses sampled every 0.25 s (exact per-frame values)"
    return result


def warm_up(pipeline: Any) -> None:
    deadline = time.monotonic() + WARMUP_TIMEOUT_S
    while time.monotonic() < deadline:
        statuses = pipeline.statuses()
        failed = [s for s in statuses if s.state.value == "failed"]
        if failed:
            raise RuntimeError(f"camera {failed[0].camera_id} failed: {failed[0].reason}")
        if statuses and all(s.frames_processed >= WARMUP_FRAMES for s in statuses):
            return
        time.sleep(0.25)
    raise RuntimeError(f"cameras did not process {WARMUP_FRAMES} frames within {WARMUP_TIMEOUT_S:.0f} s")


def window(pipeline: Any, url: str, seconds: float, report: Reporter) -> dict[str, Any]:
    """The measurement window: statuses polled every 0.25 s, metrics scraped at both ends."""
    before = scrape(url)
    first = {s.camera_id: s.frames_processed for s in pipeline.statuses()}
    t0 = time.perf_counter()
    report(window="start")
    last, samples = dict(first), []
    processed = 0
    while (elapsed := time.perf_counter() - t0) < seconds:
        time.sleep(min(0.25, seconds - elapsed))
        for s in pipeline.statuses():
            if s.frames_processed > last.get(s.camera_id, 0) and s.last_latency_s is not None:
                samples.append(s.last_latency_s)
            last[s.camera_id] = s.frames_processed
        processed = sum(last.values()) - sum(first.values())
        report(progress=f"{processed} frames", fraction=min(1.0, (time.perf_counter() - t0) / seconds))
    t1 = time.perf_counter()
    report(window="end")
    after = scrape(url)
    return {
        "fps": processed / (t1 - t0),
        "frames": processed,
        "latency_samples": samples,
        **summarize(before, after),
    }
