"""Metrics as an operator sees them: a real Prometheus scraping a real run with the shipped config,
every dashboard query and alert rule evaluated through its HTTP API; the catalog; a two-node Ray."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.dashboards import DASHBOARDS, OUT_DIR, render
from pipeline.core.messages import CameraState
from pipeline.core.metrics import catalog
from pipeline.runtime.driver import Pipeline
from pipeline.runtime.redis_server import EmbeddedRedis
from tests.support.configs import chatty_config
from tests.support.prometheus import DEPLOY, Prometheus, http_json
from tests.support.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def observed(ray_session: None, tmp_path_factory: pytest.TempPathFactory, street_mp4: Path) -> Iterator[dict[str, Any]]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `make setup` as root (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("observability")
    cfg = chatty_config(
        [
            {"id": "lobby", "url": str(street_mp4), "fps": 5, "loop": True},
            {"id": "gone", "url": str(tmp / "missing.mp4")},
        ],
        tmp / "spool",
        update_interval_s=0.5,
    )
    # Shared model workers: the run exports every worker kind's series the dashboards chart.
    cfg = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"placement": "workers"})})
    with EmbeddedRedis() as redis_server:
        pipeline = Pipeline(cfg, redis_server.url)
        pipeline.start()
        prom = Prometheus(tmp, int(pipeline.metrics_port or 0))
        try:
            wait_for(prom.ready, 30, "prometheus to be ready")
            wait_for(
                lambda: prom.query("vigil_events_published_total{kind='clip'} > 0")["data"]["result"],
                120,
                "clip events scraped by prometheus",
            )
            time.sleep(3)  # rate() needs a few more 1 s scrapes after the first events
            body = urllib.request.urlopen(f"http://127.0.0.1:{pipeline.metrics_port}/metrics", timeout=10).read()
            yield {
                "prom": prom,
                "metrics": body.decode(),
                "statuses": {s.camera_id: s for s in pipeline.statuses()},
                "pipeline": pipeline,
            }
        finally:
            prom.stop()
            pipeline.stop()


def concrete(expr: str) -> str:
    """Grafana's variables as a dashboard would fill them for the test run."""
    return expr.replace("$__rate_interval", "10s").replace("$__range", "5m").replace("$camera", "lobby")


PANEL_QUERIES = [
    pytest.param(q.expr, p.gpu_only, id=f"{d.uid}:{p.title}:{i}")
    for d in DASHBOARDS
    for p in d.panels
    for i, q in enumerate(p.queries)
]


@pytest.mark.parametrize(("expr", "gpu_only"), PANEL_QUERIES)
def test_every_panel_query_returns_series(observed: dict[str, Any], expr: str, gpu_only: bool) -> None:
    result = observed["prom"].query(concrete(expr))
    assert result["status"] == "success", result
    if gpu_only and not re.search(r"vigil_gpu_\w+", observed["metrics"]):
        pytest.skip("GPU panel: this host has no NVIDIA GPU, so no GPU series exist")
    assert result["data"]["result"], f"no series for {concrete(expr)}"


def test_every_alert_rule_is_valid_and_camera_down_fires(observed: dict[str, Any]) -> None:
    prom = observed["prom"]
    assert observed["statuses"]["gone"].state is CameraState.FAILED

    def camera_down_firing() -> bool:
        alerts = http_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
        return any(
            a["labels"]["alertname"] == "VigilCameraDown"
            and a["labels"].get("camera") == "gone"
            and a["state"] == "firing"
            for a in alerts
        )

    wait_for(camera_down_firing, 20, "VigilCameraDown to fire for the failed camera")
    groups = http_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 6
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert prom.query(rule["query"])["status"] == "success"
    firing_for_lobby = [
        a
        for a in http_json(f"{prom.url}/api/v1/alerts")["data"]["alerts"]
        if a["labels"].get("camera") == "lobby" and a["labels"]["alertname"] == "VigilCameraDown"
    ]
    assert firing_for_lobby == [], "a streaming camera must not be reported down"


def catalog_names() -> set[str]:
    """Family names as prometheus_client reports them (counters without `_total`)."""
    return {re.sub(r"_total$", "", e.name) for e in catalog()}


def test_every_catalog_metric_is_exported(observed: dict[str, Any]) -> None:
    exported = {re.sub(r"_total$", "", n) for n in re.findall(r"^# TYPE (vigil_\w+) ", observed["metrics"], re.M)}
    missing = {n for n in catalog_names() if not n.startswith("vigil_gpu_")} - exported
    assert not missing, f"declared but never exported after a run: {sorted(missing)}"


def test_every_metric_used_by_dashboards_and_rules_is_in_the_catalog() -> None:
    text = json.dumps([render(d) for d in DASHBOARDS]) + (DEPLOY / "prometheus/rules/vigil-alerts.yml").read_text()
    used = {re.sub(r"_(bucket|sum|count|total)$", "", m) for m in re.findall(r"vigil_[a-z0-9_]+", text)}
    used -= {"vigil_prometheus"}  # the datasource uid
    known = {re.sub(r"_total$", "", n) for n in catalog_names()}
    assert used <= known, f"unknown metrics in dashboards or rules: {sorted(used - known)}"


def test_readme_documents_every_metric() -> None:
    readme = (REPO / "docs" / "metrics.md").read_text()
    for entry in catalog():
        row = f"| `{entry.name}` | {entry.type} | {', '.join(entry.labels)} |"
        assert row in readme, f"docs/metrics.md's metric table lacks the row for {entry.name}: {row}"


def test_shipped_dashboards_are_generated_from_code() -> None:
    for dash in DASHBOARDS:
        shipped = json.loads((OUT_DIR / f"{dash.uid}.json").read_text())
        assert shipped == render(dash), "run: python -m pipeline.core.dashboards"


def test_promtool_accepts_the_shipped_files() -> None:
    config = subprocess.run(
        ["promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(DEPLOY / "prometheus/rules/vigil-alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout


def test_one_scrape_covers_actors_on_two_ray_nodes(street_mp4: Path, tmp_path: Path) -> None:
    with EmbeddedRedis() as redis_server:
        run = subprocess.run(
            [sys.executable, "-m", "tests.support.multinode", str(street_mp4), redis_server.url, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["cluster_nodes"] == 2
    assert len(set(report["nodes"].values())) == 2, f"cameras not spread over nodes: {report['nodes']}"
    for cam in ("cam0", "cam1"):
        assert re.search(rf'vigil_frames_processed_total\{{camera="{cam}"\}} [1-9]', report["metrics"]), cam


def test_killed_worker_is_restarted_counted_and_cameras_go_on(observed: dict[str, Any]) -> None:
    """Runs last in this module: it kills the detector of the shared run."""
    import ray

    pipeline: Pipeline = observed["pipeline"]
    port = pipeline.metrics_port

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

    scrape()  # the driver records every actor's process id
    before = next(s for s in pipeline.statuses() if s.camera_id == "lobby").frames_processed
    assert pipeline.plan is not None
    ray.kill(pipeline.plan.detectors[0], no_restart=False)
    wait_for(
        lambda: 'vigil_worker_restarts_total{worker="detector"} 1.0' in scrape(),
        120,
        "the detector restart to be counted",
    )
    wait_for(
        lambda: next(s for s in pipeline.statuses() if s.camera_id == "lobby").frames_processed > before + 10,
        120,
        "the camera to process frames again",
    )
