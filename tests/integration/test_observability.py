"""Metrics as an operator sees them: a real Prometheus scraping a real run with the shipped config,
every dashboard query and alert rule evaluated through its HTTP API; the catalog; a two-node Ray.

Alert conditions a short healthy run cannot reach (slow frames, a spool filling up, Redis errors,
dropped frames) are served by a small exporter under the test's control, with Vigil's metric names
and labels, to a second Prometheus that loads the same shipped rules."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from pipeline.core.dashboards import DASHBOARDS, OUT_DIR, render
from pipeline.core.messages import CameraState
from pipeline.core.metrics import LATENCY_BUCKETS_S, GpuCollector, catalog
from pipeline.runtime.driver import Pipeline
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.cluster import run_script
from tests.support.configs import chatty_config
from tests.support.metrics import samples, scrape, value
from tests.support.prometheus import DEPLOY, Prometheus, http_json
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = DEPLOY / "prometheus" / "rules" / "vigil-alerts.yml"
ALERT_NAMES = (
    "VigilCameraDown",
    "VigilLatencyHigh",
    "VigilEventsSpooling",
    "VigilFramesDropping",
    "VigilWorkerRestarting",
    "VigilPublishErrors",
    "VigilControlRefused",
    "VigilDiskWriteErrors",
    "VigilUnreadEventsTrimmed",
)


def require_prometheus() -> None:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `make setup` as root (apt-get install prometheus)")


def firing(prom: Prometheus, alertname: str, **labels: str) -> bool:
    """Whether Prometheus reports ``alertname`` firing for a series whose labels include ``labels``."""
    alerts = http_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
    return any(
        a["labels"]["alertname"] == alertname
        and a["state"] == "firing"
        and all(a["labels"].get(k) == v for k, v in labels.items())
        for a in alerts
    )


PACK_DETECTOR = Path(__file__).resolve().parents[2] / "models" / "demo" / "detector.pt"
# A line down the middle of the street video and a zone on its right half.
ANALYTICS = {
    "zones": [{"name": "east", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], "min_frames": 2}],
    "lines": [{"name": "middle", "points": [[0.5, 0.0], [0.5, 1.0]]}],
}


@pytest.fixture(scope="module")
def observed(ray_session: None, tmp_path_factory: pytest.TempPathFactory, street_mp4: Path) -> Iterator[dict[str, Any]]:
    require_prometheus()
    tmp = tmp_path_factory.mktemp("observability")
    cfg = chatty_config(
        [
            {"id": "lobby", "url": str(street_mp4), "fps": 5, "loop": True, "analytics": ANALYTICS},
            {"id": "gone", "url": str(tmp / "missing.mp4")},
        ],
        tmp / "spool",
        update_interval_s=0.5,
    )
    # The pack's detector finds the street's people and cars, so lines and zones count something.
    detector = cfg.models.detector.model_copy(update={"weights": str(PACK_DETECTOR), "imgsz": 384})
    cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"detector": detector})})
    # Shared model workers: the run exports every worker kind's series the dashboards chart.
    cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"placement": "workers"})})
    with EmbeddedRedis() as redis_server:
        pipeline = Pipeline(cfg, redis_server.url)
        pipeline.start()
        prom = Prometheus(tmp, int(pipeline.metrics_port or 0))
        try:
            wait_for(prom.ready, 30, "prometheus to be ready")
            wait_for(
                lambda: any(s.camera_id == "lobby" and s.events_published > 0 for s in pipeline.statuses()),
                120,
                "the streaming camera to publish events",
            )
            wait_for(lambda: prom.query("vigil_stream_up == 1")["data"]["result"], 30, "prometheus to scrape the run")
            yield {
                "prom": prom,
                "port": int(pipeline.metrics_port or 0),
                "statuses": {s.camera_id: s for s in pipeline.statuses()},
                "pipeline": pipeline,
            }
        finally:
            prom.stop()
            pipeline.stop()


# --- the catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """A sample the `observed` run must export: ``check`` is "> 0" (the run exercised it), "= <v>"
    (a state the run is in) or ">= 0" (a series that starts at zero and that the run has no reason
    to move; it must exist so rates and dashboards see it)."""

    sample: str
    labels: dict[str, str]
    check: str

    def holds(self, found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        values = [
            v
            for (name, pairs), v in found.items()
            if name == self.sample and all(dict(pairs).get(k) == w for k, w in self.labels.items())
        ]
        if self.check == "> 0":
            return any(v > 0 for v in values)
        if self.check == ">= 0":
            return any(v >= 0 for v in values)
        return any(v == float(self.check.removeprefix("= ")) for v in values)


def per_camera(sample: str, lobby: str, **labels: str) -> list[Want]:
    """``lobby`` (streaming) must meet ``lobby``; ``gone`` (failed at start) has its series at zero."""
    return [Want(sample, {"camera": "lobby", **labels}, lobby), Want(sample, {"camera": "gone", **labels}, "= 0")]


# Every catalogue family with data in the `observed` run (a file camera looping at 5 fps on shared
# detector, classifier and clip-head workers; a camera whose file is missing).
RUN_SAMPLES: dict[str, list[Want]] = {
    "vigil_frames_decoded_total": per_camera("vigil_frames_decoded_total", "> 0"),
    "vigil_frames_processed_total": per_camera("vigil_frames_processed_total", "> 0"),
    "vigil_frames_dropped_total": per_camera("vigil_frames_dropped_total", "> 0", reason="fps_cap")
    + [Want("vigil_frames_dropped_total", {"camera": "lobby", "reason": r}, ">= 0") for r in ("stale", "worker_error")],
    "vigil_crop_failures_total": per_camera("vigil_crop_failures_total", "= 0"),  # no crop classifier failed
    "vigil_stage_latency_seconds": [
        Want("vigil_stage_latency_seconds_count", {"stage": stage}, "> 0")
        for stage in ("decode", "detect", "classify", "temporal", "publish")
    ],
    "vigil_e2e_latency_seconds": per_camera("vigil_e2e_latency_seconds_count", "> 0"),
    "vigil_events_published_total": per_camera("vigil_events_published_total", "> 0", kind="clip")
    # An untrained detector rarely finds an object: the series must exist, its value may be anything.
    + per_camera("vigil_events_published_total", ">= 0", kind="object"),
    "vigil_events_spooled": per_camera("vigil_events_spooled", ">= 0"),
    "vigil_stream_up": per_camera("vigil_stream_up", "= 1"),
    "vigil_stream_state": [
        Want("vigil_stream_state", {"camera": "lobby", "state": "streaming"}, "= 1"),
        Want("vigil_stream_state", {"camera": "lobby", "state": "failed"}, "= 0"),
        Want("vigil_stream_state", {"camera": "gone", "state": "failed"}, "= 1"),
        Want("vigil_stream_state", {"camera": "gone", "state": "streaming"}, "= 0"),
    ],
    "vigil_stream_reconnects_total": per_camera("vigil_stream_reconnects_total", ">= 0"),
    "vigil_model_load_seconds": [
        Want("vigil_model_load_seconds_count", {"model": m}, "> 0") for m in ("detector", "classifier", "temporal_lstm")
    ],
    "vigil_input_fps": per_camera("vigil_input_fps", "> 0"),
    "vigil_processed_fps": per_camera("vigil_processed_fps", "> 0"),
    "vigil_queue_depth": per_camera("vigil_queue_depth", ">= 0", queue="decode"),
    "vigil_batch_size": [
        Want("vigil_batch_size_count", {"model": m}, "> 0") for m in ("detector", "classifier", "temporal")
    ],
    "vigil_batch_seconds": [
        Want("vigil_batch_seconds_count", {"model": m}, "> 0") for m in ("detector", "classifier", "temporal")
    ],
    "vigil_model_cpu_seconds_total": [
        Want("vigil_model_cpu_seconds_total", {"model": m}, "> 0") for m in ("detector", "classifier", "temporal")
    ],
    # Only camera hosts calling a fused worker record it; with shared workers it stays at zero.
    "vigil_call_frames": [Want("vigil_call_frames_count", {}, "= 0")],
    "vigil_camera_cpu_seconds_total": [
        Want("vigil_camera_cpu_seconds_total", {"step": s}, "> 0") for s in ("decode", "submit", "track", "publish")
    ],
    "vigil_incidents_total": [Want("vigil_incidents_total", {"kind": "clip"}, "> 0")],
    "vigil_worker_restarts_total": [
        Want("vigil_worker_restarts_total", {"worker": w}, ">= 0")
        for w in ("camera", "detector", "classifier", "temporal")
    ],
    # Nobody sends a command in the run; each reason's series exists from the control channel's start.
    "vigil_control_refused_total": [
        Want("vigil_control_refused_total", {"reason": r}, ">= 0")
        for r in (
            "unsigned",
            "bad_signature",
            "stale",
            "replayed",
            "malformed",
            "source_not_allowed",
            "max_cameras",
            "busy",
        )
    ],
    # The run stays within the Redis budget, no consumer group lags and the disk takes every write:
    # each series exists from the start, at zero.
    "vigil_redis_evicted_total": [
        Want("vigil_redis_evicted_total", {"kind": k}, ">= 0")
        for k in ("snapshot", "dedupe_key", "unread_stream_entry")
    ],
    "vigil_disk_write_errors_total": [
        Want("vigil_disk_write_errors_total", {"what": w}, ">= 0") for w in ("spool", "snapshots")
    ],
    # The lobby camera's line and zone (ANALYTICS) on the pack's detector: people and cars cross and stay.
    "vigil_line_crossings_total": [Want("vigil_line_crossings_total", {"camera": "lobby", "line": "middle"}, "> 0")],
    "vigil_zone_entries_total": [Want("vigil_zone_entries_total", {"camera": "lobby", "zone": "east"}, "> 0")],
    "vigil_zone_objects": [Want("vigil_zone_objects", {"camera": "lobby", "zone": "east"}, ">= 0")],
    "vigil_zone_dwell_seconds": [Want("vigil_zone_dwell_seconds_count", {"camera": "lobby", "zone": "east"}, "> 0")],
    "vigil_object_speed": [Want("vigil_object_speed_count", {"camera": "lobby", "unit": "px/s"}, "> 0")],
    "vigil_process_cpu_seconds_total": [
        Want("vigil_process_cpu_seconds_total", {"actor": a}, "> 0")
        for a in ("driver", "camera", "detector", "classifier")
    ],
    "vigil_process_resident_memory_bytes": [
        Want("vigil_process_resident_memory_bytes", {"actor": a}, "> 0")
        for a in ("driver", "camera", "detector", "classifier")
    ],
}
GPU_FAMILIES = ("vigil_gpu_utilization_ratio", "vigil_gpu_memory_used_bytes")
# Families with no sample at all in the `observed` run, and why.
NO_SAMPLE_IN_RUN = {
    "vigil_publish_errors_total": "Redis is healthy; the series are labelled by error and appear with the first",
}


def on_gpu_host() -> bool:
    return bool(list(GpuCollector().collect()))


def test_every_catalog_family_is_accounted_for() -> None:
    """Each declared family is either checked for samples after a run or listed with a reason."""
    names = {e.name for e in catalog()}
    assert set(RUN_SAMPLES) | set(NO_SAMPLE_IN_RUN) | set(GPU_FAMILIES) == names


def test_every_catalog_metric_has_samples_with_its_labels_after_a_run(observed: dict[str, Any]) -> None:
    """After a real run each family has samples carrying exactly its documented labels, with the
    values the run must have produced (frames, events, latencies, per camera where labelled so)."""
    wants = [w for ws in RUN_SAMPLES.values() for w in ws]
    if on_gpu_host():
        wants += [Want(name, {}, ">= 0") for name in GPU_FAMILIES]
    text = ""

    def all_hold() -> bool:
        nonlocal text
        text = scrape(observed["port"])
        found = samples(text)
        return all(w.holds(found) for w in wants)

    try:
        wait_for(all_hold, 60, "every catalog family's samples")
    except AssertionError:
        found = samples(text)
        missing = [f"{w.sample}{w.labels} {w.check}" for w in wants if not w.holds(found)]
        raise AssertionError(f"after a run, these samples are missing or wrong: {missing}") from None
    documented = {re.sub(r"_total$", "", e.name): set(e.labels) for e in catalog()}
    families = {
        fam.name: fam
        for fam in text_string_to_metric_families(text)
        if fam.name.startswith("vigil_") and not fam.name.endswith("_created")  # creation times, a family of their own
    }
    for name, fam in families.items():
        assert name in documented, f"{name} is exported but not in the catalogue"
        for s in fam.samples:
            assert set(s.labels) - {"le"} == documented[name], (s.name, s.labels, documented[name])


def test_every_metric_used_by_dashboards_and_rules_is_in_the_catalog() -> None:
    text = json.dumps([render(d) for d in DASHBOARDS]) + RULES_FILE.read_text()
    used = {re.sub(r"_(bucket|sum|count|total)$", "", m) for m in re.findall(r"vigil_[a-z0-9_]+", text)}
    used -= {"vigil_prometheus"}  # the datasource uid
    known = {re.sub(r"_total$", "", e.name) for e in catalog()}
    assert used <= known, f"unknown metrics in dashboards or rules: {sorted(used - known)}"


def test_readme_documents_every_metric() -> None:
    readme = (REPO / "docs" / "metrics.md").read_text()
    for entry in catalog():
        row = f"| `{entry.name}` | {entry.type} | {', '.join(entry.labels)} |"
        assert row in readme, f"docs/metrics.md's metric table lacks the row for {entry.name}: {row}"


# --- dashboards ----------------------------------------------------------------------------------

Series = list[tuple[dict[str, str], float]]


@dataclass(frozen=True)
class Expect:
    """What a panel query must return during the `observed` run."""

    what: str
    check: Callable[[Series], bool]


def _matching(result: Series, labels: dict[str, str]) -> list[float]:
    return [v for lab, v in result if all(lab.get(k) == w for k, w in labels.items())]


def positive(**labels: str) -> Expect:
    return Expect(f"a value > 0 for {labels}", lambda r: any(math.isfinite(v) and v > 0 for v in _matching(r, labels)))


def present(**labels: str) -> Expect:
    return Expect(f"a series for {labels}", lambda r: bool(_matching(r, labels)))


def equal(want: float, **labels: str) -> Expect:
    return Expect(f"{want} for {labels}", lambda r: any(v == want for v in _matching(r, labels)))


def every(*expects: Expect) -> Expect:
    return Expect(" and ".join(e.what for e in expects), lambda r: all(e.check(r) for e in expects))


def quantiles() -> list[Expect]:
    return [positive()] * 3


OVERVIEW: dict[str, list[Expect]] = {
    "Cameras streaming": [equal(1), equal(2)],
    "Cameras by state": [every(equal(1, state="streaming"), equal(1, state="failed"), equal(0, state="stopped"))],
    "Input fps per camera": [every(positive(camera="lobby"), equal(0, camera="gone"))],
    "Processed fps per camera": [every(positive(camera="lobby"), equal(0, camera="gone"))],
    "End-to-end latency (capture to publish)": quantiles(),
    "Stage latency p95": [every(*(positive(stage=s) for s in ("decode", "detect", "classify", "temporal", "publish")))],
    "Events/s by kind": [positive(kind="clip")],
    # The run's first clip incident creates its series at 1, so increase() only counts later ones.
    "Incidents by label (range)": [present(kind="clip")],
    "Dropped frames/s by reason": [every(positive(reason="fps_cap"), equal(0, reason="stale"))],
    "Events waiting in the spool": [equal(0)],
    # No Redis error in this run: the panel is flat at 0 (the fallback, or series of earlier errors
    # that no longer grow; test_publish_errors_panel_charts_failing_writes checks real error series).
    "Publish errors/s": [Expect("0 for every series", lambda r: bool(r) and all(v == 0 for _lab, v in r))],
    "Reconnects (range)": [every(equal(0, camera="lobby"), equal(0, camera="gone"))],
    "Worker restarts (range)": [every(*(present(worker=w) for w in ("camera", "detector", "classifier", "temporal")))],
    "Batch size p50 by model": [every(*(positive(model=m) for m in ("detector", "classifier", "temporal")))],
    "Model call time p95 by model": [every(*(positive(model=m) for m in ("detector", "classifier", "temporal")))],
    "CPU by actor type": [every(*(positive(actor=a) for a in ("driver", "camera", "detector", "classifier")))],
    "Memory by actor type": [every(*(positive(actor=a) for a in ("driver", "camera", "detector", "classifier")))],
    "Model load time": [every(*(positive(model=m) for m in ("detector", "classifier", "temporal_lstm")))],
    "Line crossings per hour": [present(camera="lobby", line="middle")],
    "Objects in zones": [present(camera="lobby", zone="east")],
    "Mean dwell in zones": [positive(camera="lobby", zone="east")],
    "GPU utilisation": [positive()],
    "GPU memory": [positive()],
}
CAMERA: dict[str, list[Expect]] = {
    "Streaming": [equal(1, camera="lobby")],
    "State": [every(equal(1, state="streaming"), equal(0, state="failed"))],
    "Input vs processed fps": [positive(), positive()],
    "End-to-end latency": quantiles(),
    "Dropped frames/s by reason": [every(positive(reason="fps_cap"), equal(0, reason="worker_error"))],
    "Events/s by kind": [positive(kind="clip")],
    "Reconnects (range)": [equal(0)],
    "Events waiting in the spool": [equal(0)],
    "Decode queue depth": [Expect("a depth >= 0", lambda r: len(r) == 1 and r[0][1] >= 0)],
    "Line crossings (range)": [present(line="middle")],
    "Objects in zones by class": [present(zone="east")],
    "Mean speed at lines": [positive(unit="px/s")],
}
EXPECTED = {"vigil-overview": OVERVIEW, "vigil-camera": CAMERA}


def concrete(expr: str) -> str:
    """Grafana's variables as a dashboard would fill them for the test run."""
    return expr.replace("$__rate_interval", "10s").replace("$__range", "5m").replace("$camera", "lobby")


PANEL_QUERIES = [
    pytest.param(d.uid, p.title, i, q.expr, p.gpu_only, id=f"{d.uid}:{p.title}:{i}")
    for d in DASHBOARDS
    for p in d.panels
    for i, q in enumerate(p.queries)
]


def test_every_panel_query_has_an_expectation() -> None:
    for d in DASHBOARDS:
        assert {p.title for p in d.panels} == set(EXPECTED[d.uid]), d.uid
        for p in d.panels:
            assert len(EXPECTED[d.uid][p.title]) == len(p.queries), p.title


def vector(prom: Prometheus, expr: str) -> Series:
    result = prom.query(expr)
    assert result["status"] == "success", result
    return [
        ({k: v for k, v in r["metric"].items() if k not in ("__name__", "instance", "job")}, float(r["value"][1]))
        for r in result["data"]["result"]
    ]


@pytest.mark.parametrize(("uid", "title", "index", "expr", "gpu_only"), PANEL_QUERIES)
def test_every_panel_query_charts_the_run(
    observed: dict[str, Any], uid: str, title: str, index: int, expr: str, gpu_only: bool
) -> None:
    """Each panel query parses and shows what the run did (rates above zero for what it exercised,
    the cameras' states, zero for what it did not), not merely some series."""
    if gpu_only and not on_gpu_host():
        pytest.skip("GPU panel: this host has no NVIDIA GPU, so no GPU series exist")
    expect = EXPECTED[uid][title][index]
    prom = observed["prom"]
    result: Series = []

    def shows() -> bool:
        nonlocal result
        result = vector(prom, concrete(expr))
        return expect.check(result)

    try:
        wait_for(shows, 60, f"{concrete(expr)} to show {expect.what}", poll_s=1.0)
    except AssertionError:
        raise AssertionError(f"{concrete(expr)} returned {result}, want {expect.what}") from None


def test_shipped_dashboards_are_generated_from_code() -> None:
    for dash in DASHBOARDS:
        shipped = json.loads((OUT_DIR / f"{dash.uid}.json").read_text())
        assert shipped == render(dash), "run: python -m pipeline.core.dashboards"


# --- alerts --------------------------------------------------------------------------------------


def test_every_alert_rule_loads_healthy(observed: dict[str, Any]) -> None:
    """The shipped rules file loads with its nine rules, each evaluating without error."""
    prom = observed["prom"]

    def rules() -> list[dict[str, Any]]:
        return [r for g in http_json(f"{prom.url}/api/v1/rules")["data"]["groups"] for r in g["rules"]]

    assert sorted(r["name"] for r in rules()) == sorted(ALERT_NAMES)
    wait_for(lambda: all(r["health"] != "unknown" for r in rules()), 10, "every rule to be evaluated")
    for rule in rules():
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_camera_down_fires_for_the_failed_camera_only(observed: dict[str, Any]) -> None:
    prom = observed["prom"]
    assert observed["statuses"]["gone"].state is CameraState.FAILED
    wait_for(
        lambda: firing(prom, "VigilCameraDown", camera="gone"), 20, "VigilCameraDown to fire for the failed camera"
    )
    assert not firing(prom, "VigilCameraDown", camera="lobby"), "a streaming camera must not be reported down"


class Conditions:
    """Series with Vigil's names and labels, as counters that grow with time since start:

    camera ``bad``: every frame takes 4 s from capture to publish, 7 events wait in the spool, 8 of
    10 decoded frames/s are dropped as stale. Camera ``good``: 50 ms, an empty spool, 8 of 10
    dropped by the fps cap (excluded from the drop alert). Redis writes fail with ConnectionError
    twice a second; a spool overflow happened once, before the run (its counter stays still).
    Forged camera commands arrive once a second, and adds beyond control.max_cameras too (no alert).
    The outbox's disk refuses a write every second, the snapshots folder refused one before the run;
    a consumer group loses unread entries to trimming, while the budget removes snapshots (no alert)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.labels = {e.name: e.labels for e in catalog()}

    def family(self, kind: Callable[..., Any], name: str) -> Any:
        """A family with the catalogue's label names for ``name``."""
        base = re.sub(r"_total$", "", name)
        return kind(base, "test series", labels=list(self.labels[name]))

    def collect(self) -> Iterator[Metric]:
        t = time.monotonic() - self.start + 1.0
        e2e = self.family(HistogramMetricFamily, "vigil_e2e_latency_seconds")
        for camera, latency in (("bad", 4.0), ("good", 0.05)):
            count = 10 * t
            buckets = [(str(le), count if latency <= le else 0.0) for le in LATENCY_BUCKETS_S] + [("+Inf", count)]
            e2e.add_metric([camera], buckets, count * latency)
        spooled = self.family(GaugeMetricFamily, "vigil_events_spooled")
        spooled.add_metric(["bad"], 7)
        spooled.add_metric(["good"], 0)
        decoded = self.family(CounterMetricFamily, "vigil_frames_decoded_total")
        dropped = self.family(CounterMetricFamily, "vigil_frames_dropped_total")
        for camera, reason in (("bad", "stale"), ("good", "fps_cap")):
            decoded.add_metric([camera], 10 * t)
            for r in ("stale", "fps_cap", "worker_error"):
                dropped.add_metric([camera, r], 8 * t if r == reason else 0.0)
        errors = self.family(CounterMetricFamily, "vigil_publish_errors_total")
        errors.add_metric(["ConnectionError"], 2 * t)
        errors.add_metric(["spool_full"], 3)
        refused = self.family(CounterMetricFamily, "vigil_control_refused_total")
        refused.add_metric(["bad_signature"], t)
        refused.add_metric(["max_cameras"], t)
        disk = self.family(CounterMetricFamily, "vigil_disk_write_errors_total")
        disk.add_metric(["spool"], t)
        disk.add_metric(["snapshots"], 2)
        evicted = self.family(CounterMetricFamily, "vigil_redis_evicted_total")
        evicted.add_metric(["unread_stream_entry"], 5 * t)
        evicted.add_metric(["snapshot"], 5 * t)
        yield from (e2e, spooled, decoded, dropped, errors, refused, disk, evicted)


@pytest.fixture(scope="module")
def conditions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus with the shipped rules scraping :class:`Conditions`, once it has scraped twice."""
    require_prometheus()
    registry = CollectorRegistry()
    registry.register(Conditions())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    prom = Prometheus(tmp_path_factory.mktemp("conditions"), int(server.server_port))
    try:
        wait_for(prom.ready, 30, "prometheus to be ready")
        wait_for(lambda: vector(prom, "count_over_time(vigil_events_spooled[1m]) >= 3"), 30, "three scrapes")
        yield prom
    finally:
        prom.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


ALERT_CONDITIONS = [
    pytest.param("VigilLatencyHigh", {"camera": "bad"}, {"camera": "good"}, id="VigilLatencyHigh"),
    pytest.param("VigilEventsSpooling", {"camera": "bad"}, {"camera": "good"}, id="VigilEventsSpooling"),
    pytest.param("VigilFramesDropping", {"camera": "bad"}, {"camera": "good"}, id="VigilFramesDropping"),
    pytest.param(
        "VigilPublishErrors", {"reason": "ConnectionError"}, {"reason": "spool_full"}, id="VigilPublishErrors"
    ),
    pytest.param(
        "VigilControlRefused", {"reason": "bad_signature"}, {"reason": "max_cameras"}, id="VigilControlRefused"
    ),
    pytest.param("VigilDiskWriteErrors", {"what": "spool"}, {"what": "snapshots"}, id="VigilDiskWriteErrors"),
    pytest.param(
        "VigilUnreadEventsTrimmed",
        {"kind": "unread_stream_entry"},
        {"kind": "snapshot"},
        id="VigilUnreadEventsTrimmed",
    ),
]


@pytest.mark.parametrize(("alertname", "fires_for", "quiet_for"), ALERT_CONDITIONS)
def test_alert_fires_under_its_condition_and_only_there(
    conditions: Prometheus, alertname: str, fires_for: dict[str, str], quiet_for: dict[str, str]
) -> None:
    """Each shipped rule fires for the series in its condition (its `for:` set to 0 s), and not for
    the healthy series beside it. VigilCameraDown and VigilWorkerRestarting are seen firing on the
    real run (a failed camera, a killed worker)."""
    wait_for(lambda: firing(conditions, alertname, **fires_for), 30, f"{alertname} to fire for {fires_for}")
    assert not firing(conditions, alertname, **quiet_for), f"{alertname} fires for {quiet_for}"


def test_publish_errors_panel_charts_failing_writes(conditions: Prometheus) -> None:
    """The panel's `or vector(0)` fallback does not hide the error series: it shows each reason."""
    overview = next(d for d in DASHBOARDS if d.uid == "vigil-overview")
    panel = next(p for p in overview.panels if p.title == "Publish errors/s")
    expr = concrete(panel.queries[0].expr)
    wait_for(lambda: _matching(vector(conditions, expr), {"reason": "ConnectionError"}), 30, "the error series")
    result = vector(conditions, expr)
    assert _matching(result, {"reason": "ConnectionError"})[0] > 0
    assert _matching(result, {"reason": "spool_full"}) == [0.0]
    assert ({}, 0.0) not in result, "the fallback must not be added while error series exist"


def test_promtool_accepts_the_shipped_files() -> None:
    config = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run(["promtool", "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 9 rules found" in rules.stdout


# --- the cluster ---------------------------------------------------------------------------------


def test_one_scrape_covers_actors_on_two_ray_nodes(street_mp4: Path, tmp_path: Path) -> None:
    with EmbeddedRedis() as redis_server:
        report = run_script("tests.support.multinode", str(street_mp4), redis_server.url, str(tmp_path), timeout_s=300)
    assert report["cluster_nodes"] == 2
    assert len(set(report["nodes"].values())) == 2, f"cameras not spread over nodes: {report['nodes']}"
    for cam in ("cam0", "cam1"):
        assert (value(report["metrics"], "vigil_frames_processed_total", camera=cam) or 0) > 0, cam


def test_killed_worker_is_restarted_counted_and_cameras_go_on(observed: dict[str, Any]) -> None:
    """Ray restarts a killed detector: the scrape counts one restart for it, VigilWorkerRestarting
    fires for it, and the camera processes frames again. The run is left processing, so the other
    tests on this run pass before or after this one."""
    import ray

    pipeline: Pipeline = observed["pipeline"]
    port: int = observed["port"]
    prom: Prometheus = observed["prom"]

    def restarts() -> float:
        return value(scrape(port), "vigil_worker_restarts_total", worker="detector") or 0.0

    def processed() -> int:
        return next(s for s in pipeline.statuses() if s.camera_id == "lobby").frames_processed

    before = restarts()  # this scrape also records every actor's process id
    if before == 0:
        assert not firing(prom, "VigilWorkerRestarting", worker="detector")
    frames = processed()
    assert pipeline.plan is not None
    ray.kill(pipeline.plan.detectors[0], no_restart=False)
    wait_for(lambda: restarts() == before + 1, 120, "the detector restart to be counted")
    wait_for(lambda: processed() > frames + 10, 120, "the camera to process frames again")
    wait_for(lambda: firing(prom, "VigilWorkerRestarting", worker="detector"), 30, "VigilWorkerRestarting to fire")
    assert not firing(prom, "VigilWorkerRestarting", worker="classifier")
