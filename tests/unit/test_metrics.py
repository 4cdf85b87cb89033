import os
import pickle
import sys
import types

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.metrics import FederatedCollector, GpuCollector, merge_families


def process_families(camera: str, frames: int, latencies: list[float]) -> list[Metric]:
    """What one actor process would report."""
    reg = CollectorRegistry()
    Counter("vigil_frames_decoded", "d", ["camera"], registry=reg).labels(camera).inc(frames)
    Gauge("vigil_stream_up", "u", ["camera"], registry=reg).labels(camera).set(1)
    hist = Histogram("vigil_stage_latency_seconds", "l", ["stage"], buckets=(0.01, 0.1, 1.0), registry=reg)
    for v in latencies:
        hist.labels("detect").observe(v)
    families: list[Metric] = pickle.loads(pickle.dumps(list(reg.collect())))  # as they arrive over Ray
    return families


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


class FakeNvml(types.ModuleType):
    """An NVML module (pynvml's API) reporting fixed readings: per GPU, (utilisation %, bytes used)."""

    def __init__(self, readings: list[tuple[int, int]], init_error: Exception | None = None) -> None:
        super().__init__("pynvml")
        self.readings = readings
        self.init_error = init_error

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error

    def nvmlDeviceGetCount(self) -> int:
        return len(self.readings)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(gpu=self.readings[handle][0], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(used=self.readings[handle][1], total=80 * 2**30, free=0)


def gpu_reading(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml) -> list[Metric]:
    """The GPU families one process reports when NVML answers as ``nvml`` does (as they arrive over Ray)."""
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    reg = CollectorRegistry()
    reg.register(GpuCollector())
    families: list[Metric] = pickle.loads(pickle.dumps(list(reg.collect())))
    return families


def test_gpu_gauges_of_one_node_merge_by_maximum_not_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process on a node reads the same GPUs at slightly different moments: the scrape shows
    the largest reading per GPU (utilisation as a 0-1 ratio, memory in bytes), never their sum."""
    node = os.uname().nodename
    camera = gpu_reading(monkeypatch, FakeNvml([(30, 5 * 2**30), (90, 1 * 2**30)]))
    detector = gpu_reading(monkeypatch, FakeNvml([(70, 2 * 2**30), (10, 3 * 2**30)]))
    for groups in ([camera, detector], [detector, camera]):
        out = scrape(groups)
        assert out[("vigil_gpu_utilization_ratio", (("gpu", "0"), ("node", node)))] == pytest.approx(0.7)
        assert out[("vigil_gpu_utilization_ratio", (("gpu", "1"), ("node", node)))] == pytest.approx(0.9)
        assert out[("vigil_gpu_memory_used_bytes", (("gpu", "0"), ("node", node)))] == 5 * 2**30
        assert out[("vigil_gpu_memory_used_bytes", (("gpu", "1"), ("node", node)))] == 3 * 2**30


def test_gpu_gauges_of_other_nodes_stay_separate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes' GPU 0 are two series, whatever their readings."""
    here = gpu_reading(monkeypatch, FakeNvml([(40, 2**30)]))
    there = gpu_reading(monkeypatch, FakeNvml([(80, 2**31)]))
    for fam in there:
        fam.samples = [s._replace(labels={**s.labels, "node": "other-node"}) for s in fam.samples]
    out = scrape([here, there])
    node = os.uname().nodename
    assert out[("vigil_gpu_utilization_ratio", (("gpu", "0"), ("node", node)))] == pytest.approx(0.4)
    assert out[("vigil_gpu_utilization_ratio", (("gpu", "0"), ("node", "other-node")))] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "nvml",
    [
        pytest.param(FakeNvml([]), id="no-gpu"),
        pytest.param(FakeNvml([(50, 1)], init_error=OSError("NVML Shared Library Not Found")), id="no-driver"),
        pytest.param(None, id="no-pynvml"),
    ],
)
def test_hosts_without_an_nvidia_gpu_export_no_gpu_series(
    monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml | None
) -> None:
    """GPU families exist only on GPU hosts: no empty families, no zeros that read as an idle GPU."""
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None: `import pynvml` raises ImportError
    reg = CollectorRegistry()
    reg.register(GpuCollector())
    assert "vigil_gpu" not in generate_latest(reg).decode()
