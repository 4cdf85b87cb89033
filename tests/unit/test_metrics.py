import pickle

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.metrics import FederatedCollector, merge_families


def process_families(camera: str, frames: int, latencies: list[float]) -> list[Metric]:
    """What one actor process would report."""
    reg = CollectorRegistry()
    Counter("vigil_frames_decoded", "d", ["camera"], registry=reg).labels(camera).inc(frames)
    Gauge("vigil_stream_up", "u", ["camera"], registry=reg).labels(camera).set(1)
    hist = Histogram("vigil_stage_latency_seconds", "l", ["stage"], buckets=(0.01, 0.1, 1.0), registry=reg)
    for v in latencies:
        hist.labels("detect").observe(v)
    return pickle.loads(pickle.dumps(list(reg.collect())))  # as they arrive over Ray


def scrape(groups: list[list[Metric]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reg = CollectorRegistry()
    reg.register(FederatedCollector(lambda: groups))
    text = generate_latest(reg).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_histograms_from_two_processes_add_up() -> None:
    out = scrape([process_families("a", 3, [0.005, 0.5]), process_families("b", 4, [0.05])])
    assert out[("vigil_stage_latency_seconds_count", (("stage", "detect"),))] == 3
    assert out[("vigil_stage_latency_seconds_bucket", (("le", "0.01"), ("stage", "detect")))] == 1
    assert out[("vigil_stage_latency_seconds_bucket", (("le", "0.1"), ("stage", "detect")))] == 2
    assert abs(out[("vigil_stage_latency_seconds_sum", (("stage", "detect"),))] - 0.555) < 1e-9


def test_per_camera_series_stay_separate() -> None:
    out = scrape([process_families("a", 3, []), process_families("b", 4, [])])
    assert out[("vigil_frames_decoded_total", (("camera", "a"),))] == 3
    assert out[("vigil_frames_decoded_total", (("camera", "b"),))] == 4
    assert out[("vigil_stream_up", (("camera", "b"),))] == 1


def test_same_series_from_replicas_is_summed() -> None:
    merged = merge_families([process_families("a", 3, []), process_families("a", 2, [])])
    fam = next(f for f in merged if f.name == "vigil_frames_decoded")
    totals = [s.value for s in fam.samples if s.name == "vigil_frames_decoded_total"]
    assert totals == [5]
