"""Every Vigil metric, declared in one place.

Each process (the driver and every Ray actor, on any node) records into its own copy of
``VIGIL_REGISTRY``. The driver serves ``/metrics`` through a :class:`FederatedCollector` that asks
each actor for its families over Ray and merges them, so one scrape target covers a whole Ray
cluster without assuming one process or one machine. Merging sums samples with identical labels:
counters and histograms add up across replicas; a gauge series is owned by exactly one process
(e.g. ``vigil_stream_up{camera}`` by that camera's actor).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LOAD_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

VIGIL_REGISTRY = CollectorRegistry(auto_describe=True)

FRAMES_DECODED = Counter("vigil_frames_decoded", "Frames read from the source", ["camera"], registry=VIGIL_REGISTRY)
FRAMES_PROCESSED = Counter(
    "vigil_frames_processed",
    "Frames that went through detection and classification",
    ["camera"],
    registry=VIGIL_REGISTRY,
)
FRAMES_DROPPED = Counter(
    "vigil_frames_dropped",
    "Frames decoded but not processed, by reason (stale, fps_cap, worker_error)",
    ["camera", "reason"],
    registry=VIGIL_REGISTRY,
)
CROP_FAILURES = Counter(
    "vigil_crop_failures",
    "Frames processed without crop labels because the crop classifier failed (worker lost, timeout, model error)",
    ["camera"],
    registry=VIGIL_REGISTRY,
)
STAGE_LATENCY = Histogram(
    "vigil_stage_latency_seconds",
    "Time spent in a pipeline stage, seen from the camera actor",
    ["stage"],
    buckets=LATENCY_BUCKETS_S,
    registry=VIGIL_REGISTRY,
)
E2E_LATENCY = Histogram(
    "vigil_e2e_latency_seconds",
    "From frame capture to the end of its processing (events published)",
    ["camera"],
    buckets=LATENCY_BUCKETS_S,
    registry=VIGIL_REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "vigil_events_published", "Events written to Redis", ["camera", "kind"], registry=VIGIL_REGISTRY
)
PUBLISH_ERRORS = Counter("vigil_publish_errors", "Failed Redis writes, by reason", ["reason"], registry=VIGIL_REGISTRY)
EVENTS_SPOOLED = Gauge(
    "vigil_events_spooled",
    "Events accepted into the on-disk spool and not yet confirmed by Redis",
    ["camera"],
    registry=VIGIL_REGISTRY,
)
STREAM_UP = Gauge("vigil_stream_up", "1 while the camera is streaming", ["camera"], registry=VIGIL_REGISTRY)
STREAM_STATE = Gauge(
    "vigil_stream_state",
    "1 for the camera's current lifecycle state",
    ["camera", "state"],
    registry=VIGIL_REGISTRY,
)
STREAM_RECONNECTS = Counter(
    "vigil_stream_reconnects",
    "Reconnect attempts after a lost or failed source",
    ["camera"],
    registry=VIGIL_REGISTRY,
)
MODEL_LOAD_SECONDS = Histogram(
    "vigil_model_load_seconds",
    "Time a worker took to load its model",
    ["model"],
    buckets=LOAD_BUCKETS_S,
    registry=VIGIL_REGISTRY,
)
INPUT_FPS = Gauge(
    "vigil_input_fps", "Frames per second read from the source (last 5 s)", ["camera"], registry=VIGIL_REGISTRY
)
PROCESSED_FPS = Gauge(
    "vigil_processed_fps", "Frames per second processed end to end (last 5 s)", ["camera"], registry=VIGIL_REGISTRY
)
QUEUE_DEPTH = Gauge(
    "vigil_queue_depth",
    "Items waiting in a bounded queue (decode: frames decoded, not yet taken)",
    ["camera", "queue"],
    registry=VIGIL_REGISTRY,
)
BATCH_SIZE = Histogram(
    "vigil_batch_size",
    "Frames or windows per forward pass",
    ["model"],
    buckets=BATCH_BUCKETS,
    registry=VIGIL_REGISTRY,
)
BATCH_SECONDS = Histogram(
    "vigil_batch_seconds",
    "Wall time of one batched model call (pre-processing, forward pass, post-processing)",
    ["model"],
    buckets=LATENCY_BUCKETS_S,
    registry=VIGIL_REGISTRY,
)
MODEL_CPU_SECONDS = Counter(
    "vigil_model_cpu_seconds",
    "CPU time of the model calls' thread (with torch_threads > 1 its intra-op threads are not included)",
    ["model"],
    registry=VIGIL_REGISTRY,
)
CALL_FRAMES = Histogram(
    "vigil_call_frames",
    "Frames per actor call from a camera host to a fused worker (ray.host_calls_per_replica)",
    buckets=BATCH_BUCKETS,
    registry=VIGIL_REGISTRY,
)
CAMERA_CPU_SECONDS = Counter(
    "vigil_camera_cpu_seconds",
    "CPU time of the camera actors' own threads, by step (decode, prepare, submit, wait, track, ...)",
    ["step"],
    registry=VIGIL_REGISTRY,
)
INCIDENTS = Counter(
    "vigil_incidents",
    "Incidents started (start events), by kind and label",
    ["kind", "label"],
    registry=VIGIL_REGISTRY,
)
WORKER_RESTARTS = Counter(
    "vigil_worker_restarts",
    'Actors found running in a new process (Ray restarted them); worker="redis": the embedded redis-server restarted',
    ["worker"],
    registry=VIGIL_REGISTRY,
)
CONTROL_REFUSED = Counter(
    "vigil_control_refused",
    "Runtime camera commands refused, by reason (unsigned, bad_signature, stale, replayed, malformed, "
    "source_not_allowed, max_cameras, busy)",
    ["reason"],
    registry=VIGIL_REGISTRY,
)
REDIS_EVICTED = Counter(
    "vigil_redis_evicted",
    "What Vigil removed from Redis before its time, by kind: snapshot, embedding and dedupe_key (over "
    "redis.memory_budget_mb; embedding also over events.search.max_embeddings), unread_stream_entry (trimmed by "
    "redis.stream_maxlen before a consumer group read it)",
    ["kind"],
    registry=VIGIL_REGISTRY,
)
DISK_WRITE_ERRORS = Counter(
    "vigil_disk_write_errors",
    "Writes to local disk that failed (disk full, over quota, read-only, I/O error), by what: spool, snapshots",
    ["what"],
    registry=VIGIL_REGISTRY,
)
LINE_CROSSINGS = Counter(
    "vigil_line_crossings",
    "Objects that crossed a line (cameras[].analytics.lines), by line, direction and class",
    ["camera", "line", "direction", "class"],
    registry=VIGIL_REGISTRY,
)
ZONE_ENTRIES = Counter(
    "vigil_zone_entries",
    "Objects that entered a zone (cameras[].analytics.zones), by zone and class",
    ["camera", "zone", "class"],
    registry=VIGIL_REGISTRY,
)
ZONE_OBJECTS = Gauge(
    "vigil_zone_objects",
    "Objects in a zone now (seen on the camera's latest frame), by zone and class",
    ["camera", "zone", "class"],
    registry=VIGIL_REGISTRY,
)
ZONE_DWELL_SECONDS = Histogram(
    "vigil_zone_dwell_seconds",
    "Time objects spent in a zone, observed when they leave it",
    ["camera", "zone"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
    registry=VIGIL_REGISTRY,
)
OBJECT_SPEED = Histogram(
    "vigil_object_speed",
    "Speed of objects as they cross a line, in the camera's speed unit (px/s, m/s or km/h)",
    ["camera", "unit"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 50, 80, 120, 200, 300, 500),
    registry=VIGIL_REGISTRY,
)

# Families every process on a node reports identically (the node's GPUs): merged by max, not sum.
NODE_LEVEL = frozenset({"vigil_gpu_utilization_ratio", "vigil_gpu_memory_used_bytes"})


class ProcessCollector(Collector):
    """CPU seconds and resident memory of this process, labelled with its actor type."""

    def __init__(self) -> None:
        self.actor = "driver"
        self._proc = psutil.Process(os.getpid())

    def collect(self) -> Iterator[Metric]:
        times = self._proc.cpu_times()
        cpu = CounterMetricFamily(
            "vigil_process_cpu_seconds", "CPU time of Vigil processes, by actor type", labels=["actor"]
        )
        cpu.add_metric([self.actor], times.user + times.system)
        rss = GaugeMetricFamily(
            "vigil_process_resident_memory_bytes", "Resident memory of Vigil processes", labels=["actor"]
        )
        rss.add_metric([self.actor], float(self._proc.memory_info().rss))
        yield cpu
        yield rss


class GpuCollector(Collector):
    """Utilisation and memory of the node's NVIDIA GPUs (NVML); nothing when there is none."""

    def __init__(self) -> None:
        self._nvml: object | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml if pynvml.nvmlDeviceGetCount() > 0 else None
        except Exception as exc:
            log.debug("no GPU metrics: %s", exc)

    def collect(self) -> Iterator[Metric]:
        if self._nvml is None:
            return
        nvml: object = self._nvml
        util = GaugeMetricFamily("vigil_gpu_utilization_ratio", "GPU busy fraction (0-1)", labels=["node", "gpu"])
        mem = GaugeMetricFamily("vigil_gpu_memory_used_bytes", "GPU memory in use", labels=["node", "gpu"])
        node = os.uname().nodename
        for i in range(nvml.nvmlDeviceGetCount()):  # type: ignore[attr-defined]
            handle = nvml.nvmlDeviceGetHandleByIndex(i)  # type: ignore[attr-defined]
            util.add_metric([node, str(i)], nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)  # type: ignore[attr-defined]
            mem.add_metric([node, str(i)], float(nvml.nvmlDeviceGetMemoryInfo(handle).used))  # type: ignore[attr-defined]
        yield util
        yield mem


PROCESS = ProcessCollector()
VIGIL_REGISTRY.register(PROCESS)
VIGIL_REGISTRY.register(GpuCollector())


@contextmanager
def model_call(model: str, batch: int) -> Iterator[None]:
    """Count one batched model call: its size, wall time and the calling thread's CPU time (what
    `vigil bench` subtracts from a run's CPU to find the orchestration overhead)."""
    BATCH_SIZE.labels(model).observe(batch)
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        BATCH_SECONDS.labels(model).observe(time.perf_counter() - wall)
        MODEL_CPU_SECONDS.labels(model).inc(time.thread_time() - cpu)


class StepClock:
    """Charges one thread's CPU time to named steps: ``lap(step)`` adds the CPU the thread used
    since the previous lap (or since it was made) to ``vigil_camera_cpu_seconds{step}``. One
    ``thread_time`` call per lap, so the camera loop can account every step of every frame."""

    def __init__(self) -> None:
        self._last = time.thread_time()
        self._children: dict[str, Counter] = {}

    def lap(self, step: str) -> None:
        now = time.thread_time()
        child = self._children.get(step)
        if child is None:
            child = self._children[step] = CAMERA_CPU_SECONDS.labels(step)
        child.inc(now - self._last)
        self._last = now


def set_process_role(actor: str) -> None:
    """Label this process's CPU/RSS metrics with its actor type (camera, detector, ...)."""
    PROCESS.actor = actor


@dataclass(frozen=True)
class MetricsReport:
    """What an actor returns to the driver's scrape: its process id (restarts show as a new pid)
    and its metric families."""

    pid: int
    families: list[Metric]


def local_report() -> MetricsReport:
    return MetricsReport(os.getpid(), local_families())


@dataclass(frozen=True)
class CatalogEntry:
    """One exported metric: its name as Prometheus sees it, type, label names and meaning."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


_DECLARED = (
    FRAMES_DECODED,
    FRAMES_PROCESSED,
    FRAMES_DROPPED,
    CROP_FAILURES,
    STAGE_LATENCY,
    E2E_LATENCY,
    EVENTS_PUBLISHED,
    PUBLISH_ERRORS,
    EVENTS_SPOOLED,
    STREAM_UP,
    STREAM_STATE,
    STREAM_RECONNECTS,
    MODEL_LOAD_SECONDS,
    INPUT_FPS,
    PROCESSED_FPS,
    QUEUE_DEPTH,
    BATCH_SIZE,
    BATCH_SECONDS,
    MODEL_CPU_SECONDS,
    CALL_FRAMES,
    CAMERA_CPU_SECONDS,
    INCIDENTS,
    WORKER_RESTARTS,
    CONTROL_REFUSED,
    REDIS_EVICTED,
    DISK_WRITE_ERRORS,
    LINE_CROSSINGS,
    ZONE_ENTRIES,
    ZONE_OBJECTS,
    ZONE_DWELL_SECONDS,
    OBJECT_SPEED,
)
_COLLECTED = (
    CatalogEntry(
        "vigil_process_cpu_seconds_total", "counter", ("actor",), "CPU time of Vigil processes, by actor type"
    ),
    CatalogEntry("vigil_process_resident_memory_bytes", "gauge", ("actor",), "Resident memory of Vigil processes"),
    CatalogEntry("vigil_gpu_utilization_ratio", "gauge", ("node", "gpu"), "GPU busy fraction (0-1); GPU hosts only"),
    CatalogEntry("vigil_gpu_memory_used_bytes", "gauge", ("node", "gpu"), "GPU memory in use; GPU hosts only"),
)


def catalog() -> list[CatalogEntry]:
    """Every metric Vigil exports (docs/metrics.md and the tests are checked against this)."""
    entries = []
    for metric in _DECLARED:
        fam = next(iter(metric.describe()))
        name = f"{fam.name}_total" if fam.type == "counter" else fam.name
        entries.append(CatalogEntry(name, fam.type, tuple(metric._labelnames), fam.documentation))
    return entries + list(_COLLECTED)


def forget_camera(camera_id: str) -> None:
    """Drop every series labelled with ``camera_id`` from this process (the camera was removed)."""
    for metric in _DECLARED:
        names = tuple(metric._labelnames)
        if "camera" not in names:
            continue
        seen: set[tuple[str, ...]] = set()
        for fam in metric.collect():
            for sample in fam.samples:
                if sample.labels.get("camera") == camera_id:
                    seen.add(tuple(sample.labels[n] for n in names))
        for values in seen:
            metric.remove(*values)


def local_families() -> list[Metric]:
    """This process's Vigil metric families (picklable: actors return them over Ray)."""
    return list(VIGIL_REGISTRY.collect())


def merge_families(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """Merge metric families gathered from several processes into one family per name.

    Samples with the same name and labels are summed (node-level GPU gauges: the maximum);
    ``_created`` samples keep the earliest time.
    """
    merged: dict[str, Metric] = {}
    combine: dict[str, Callable[[float, float], float]] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in groups:
        for fam in families:
            if fam.name not in merged:
                merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
                combine[fam.name] = max if fam.name in NODE_LEVEL else (lambda a, b: a + b)
            acc = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in acc:
                    acc[key] = s.value
                elif s.name.endswith("_created"):
                    acc[key] = min(acc[key], s.value)
                else:
                    acc[key] = combine[fam.name](acc[key], s.value)
    for name, fam in merged.items():
        for (sample_name, labels), value in values[name].items():
            fam.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class FederatedCollector(Collector):
    """Serves this process's Vigil metrics merged with those ``fetch_remote`` returns.

    ``fetch_remote`` is called at every scrape; it returns one list of families per live actor and
    is responsible for its own timeouts (a dead or busy actor must not hang the scrape).
    """

    def __init__(self, fetch_remote: Callable[[], list[list[Metric]]]) -> None:
        self._fetch_remote = fetch_remote

    def collect(self) -> Iterator[Metric]:
        groups: list[list[Metric]] = [local_families()]
        groups.extend(self._fetch_remote())
        yield from merge_families(groups)


class MetricsServer:
    """The ``/metrics`` HTTP endpoint (prometheus_client's server, in a daemon thread)."""

    def __init__(self, host: str, port: int, fetch_remote: Callable[[], list[list[Metric]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FederatedCollector(fetch_remote))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.host, self.port = host, port

    def start(self) -> int:
        """Bind and serve; returns the bound port. Raises OSError when the port is taken."""
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = int(self._server.server_port)
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
