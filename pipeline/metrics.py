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
import threading
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGES = ("decode", "detect", "classify", "temporal", "publish")

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
    "Frames decoded but not processed, by reason (stale, backpressure, error)",
    ["camera", "reason"],
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
MODEL_LOAD_SECONDS = Gauge(
    "vigil_model_load_seconds", "Time the worker took to load its model", ["model"], registry=VIGIL_REGISTRY
)


def local_families() -> list[Metric]:
    """This process's Vigil metric families (picklable: actors return them over Ray)."""
    return list(VIGIL_REGISTRY.collect())


def merge_families(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """Merge metric families gathered from several processes into one family per name.

    Samples with the same name and labels are summed; ``_created`` samples keep the earliest time.
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in groups:
        for fam in families:
            if fam.name not in merged:
                merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            acc = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in acc:
                    acc[key] = s.value
                elif s.name.endswith("_created"):
                    acc[key] = min(acc[key], s.value)
                else:
                    acc[key] += s.value
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
