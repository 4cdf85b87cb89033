"""Grafana dashboards as code: every panel and its PromQL, in one place.

    python -m pipeline.core.dashboards            # rewrites deploy/grafana/dashboards/*.json

The JSON under ``deploy/grafana/dashboards/`` is generated from here (a test checks it is current),
and the integration tests evaluate every query below on a real Prometheus scraping a real run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "vigil-prometheus"}
OUT_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # or "stat"
    unit: str = "short"
    description: str = ""
    gpu_only: bool = False  # returns series only on hosts with an NVIDIA GPU


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    variables: tuple[dict[str, Any], ...] = field(default=())


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _quantiles(metric: str, by: str = "", selector: str = "") -> tuple[Query, ...]:
    group = f"le{', ' + by if by else ''}"
    return tuple(
        _q(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))",
            f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in (0.5, 0.95, 0.99)
    )


OVERVIEW = Dashboard(
    uid="vigil-overview",
    title="Vigil overview",
    panels=(
        Panel(
            "Cameras streaming",
            (_q("sum(vigil_stream_up)", "streaming"), _q("count(vigil_stream_up)", "configured")),
            kind="stat",
        ),
        Panel("Cameras by state", (_q("sum by (state) (vigil_stream_state)", "{{state}}"),)),
        Panel(
            "Input fps per camera",
            (_q(f"sum by (camera) (rate(vigil_frames_decoded_total[{RATE}]))", "{{camera}}"),),
            unit="fps",
        ),
        Panel(
            "Processed fps per camera",
            (_q(f"sum by (camera) (rate(vigil_frames_processed_total[{RATE}]))", "{{camera}}"),),
            unit="fps",
        ),
        Panel("End-to-end latency (capture to publish)", _quantiles("vigil_e2e_latency_seconds"), unit="s"),
        Panel(
            "Stage latency p95",
            (
                _q(
                    f"histogram_quantile(0.95, sum by (le, stage) (rate(vigil_stage_latency_seconds_bucket[{RATE}])))",
                    "{{stage}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Events/s by kind",
            (_q(f"sum by (kind) (rate(vigil_events_published_total[{RATE}]))", "{{kind}}"),),
            unit="ops",
        ),
        Panel(
            "Incidents by label (range)",
            (_q("sum by (kind, label) (increase(vigil_incidents_total[$__range]))", "{{kind}} {{label}}"),),
        ),
        Panel(
            "Dropped frames/s by reason",
            (_q(f"sum by (reason) (rate(vigil_frames_dropped_total[{RATE}]))", "{{reason}}"),),
            unit="fps",
        ),
        Panel("Events waiting in the spool", (_q("sum(vigil_events_spooled)", "spooled"),)),
        Panel(
            "Publish errors/s",
            (_q(f"sum by (reason) (rate(vigil_publish_errors_total[{RATE}])) or on() vector(0)", "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Reconnects (range)",
            (_q("sum by (camera) (increase(vigil_stream_reconnects_total[$__range]))", "{{camera}}"),),
        ),
        Panel(
            "Worker restarts (range)",
            (_q("sum by (worker) (increase(vigil_worker_restarts_total[$__range]))", "{{worker}}"),),
        ),
        Panel(
            "Batch size p50 by model",
            (_q(f"histogram_quantile(0.5, sum by (le, model) (rate(vigil_batch_size_bucket[{RATE}])))", "{{model}}"),),
        ),
        Panel(
            "Model call time p95 by model",
            (
                _q(
                    f"histogram_quantile(0.95, sum by (le, model) (rate(vigil_batch_seconds_bucket[{RATE}])))",
                    "{{model}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "CPU by actor type",
            (_q(f"sum by (actor) (rate(vigil_process_cpu_seconds_total[{RATE}]))", "{{actor}}"),),
            unit="percentunit",
        ),
        Panel(
            "Memory by actor type",
            (_q("sum by (actor) (vigil_process_resident_memory_bytes)", "{{actor}}"),),
            unit="bytes",
        ),
        Panel(
            "Model load time",
            (_q("max by (model) (vigil_model_load_seconds_sum / vigil_model_load_seconds_count)", "{{model}}"),),
            unit="s",
        ),
        Panel(
            "Line crossings per hour",
            (
                _q(
                    "sum by (camera, line, direction) (increase(vigil_line_crossings_total[1h]))",
                    "{{camera}} {{line}} {{direction}}",
                ),
            ),
            description="Objects crossing each line (cameras[].analytics.lines) in the hour before each point",
        ),
        Panel(
            "Objects in zones",
            (_q("sum by (camera, zone) (vigil_zone_objects)", "{{camera}} {{zone}}"),),
            description="Occupancy of each zone (cameras[].analytics.zones) on its camera's latest frame",
        ),
        Panel(
            "Mean dwell in zones",
            (
                _q(
                    "sum by (camera, zone) (vigil_zone_dwell_seconds_sum) "
                    "/ sum by (camera, zone) (vigil_zone_dwell_seconds_count)",
                    "{{camera}} {{zone}}",
                ),
            ),
            unit="s",
            description="Mean time objects spent in each zone, over those that have left it",
        ),
        Panel(
            "GPU utilisation",
            (_q("max by (node, gpu) (vigil_gpu_utilization_ratio)", "{{node}} {{gpu}}"),),
            unit="percentunit",
            gpu_only=True,
        ),
        Panel(
            "GPU memory",
            (_q("max by (node, gpu) (vigil_gpu_memory_used_bytes)", "{{node}} {{gpu}}"),),
            unit="bytes",
            gpu_only=True,
        ),
    ),
)

_CAM = '{camera="$camera"}'
CAMERA = Dashboard(
    uid="vigil-camera",
    title="Vigil camera",
    variables=(
        {
            "name": "camera",
            "label": "Camera",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(vigil_stream_up, camera)", "refId": "cameras"},
            "definition": "label_values(vigil_stream_up, camera)",
            "refresh": 2,
            "sort": 1,
        },
    ),
    panels=(
        Panel("Streaming", (_q(f"vigil_stream_up{_CAM}", "up"),), kind="stat"),
        Panel("State", (_q(f"max by (state) (vigil_stream_state{_CAM})", "{{state}}"),)),
        Panel(
            "Input vs processed fps",
            (
                _q(f"sum(rate(vigil_frames_decoded_total{_CAM}[{RATE}]))", "input"),
                _q(f"sum(rate(vigil_frames_processed_total{_CAM}[{RATE}]))", "processed"),
            ),
            unit="fps",
        ),
        Panel("End-to-end latency", _quantiles("vigil_e2e_latency_seconds", selector=_CAM), unit="s"),
        Panel(
            "Dropped frames/s by reason",
            (_q(f"sum by (reason) (rate(vigil_frames_dropped_total{_CAM}[{RATE}]))", "{{reason}}"),),
            unit="fps",
        ),
        Panel(
            "Events/s by kind",
            (_q(f"sum by (kind) (rate(vigil_events_published_total{_CAM}[{RATE}]))", "{{kind}}"),),
            unit="ops",
        ),
        Panel(
            "Reconnects (range)", (_q(f"sum(increase(vigil_stream_reconnects_total{_CAM}[$__range]))", "reconnects"),)
        ),
        Panel("Events waiting in the spool", (_q(f"sum(vigil_events_spooled{_CAM})", "spooled"),)),
        Panel("Decode queue depth", (_q(f"max(vigil_queue_depth{_CAM})", "frames"),)),
        Panel(
            "Line crossings (range)",
            (
                _q(
                    f"sum by (line, direction) (increase(vigil_line_crossings_total{_CAM}[$__range]))",
                    "{{line}} {{direction}}",
                ),
            ),
        ),
        Panel(
            "Objects in zones by class", (_q(f"sum by (zone, class) (vigil_zone_objects{_CAM})", "{{zone}} {{class}}"),)
        ),
        Panel(
            "Mean speed at lines",
            (
                _q(
                    f"sum by (unit) (vigil_object_speed_sum{_CAM}) / sum by (unit) (vigil_object_speed_count{_CAM})",
                    "{{unit}}",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, CAMERA)


def render(dash: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON model."""
    panels = []
    for i, p in enumerate(dash.panels):
        width = 6 if p.kind == "stat" else 12
        panels.append(
            {
                "id": i + 1,
                "type": p.kind,
                "title": p.title,
                "description": p.description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": width, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "options": {},
                "targets": [
                    {"refId": chr(ord("A") + j), "expr": q.expr, "legendFormat": q.legend, "datasource": DATASOURCE}
                    for j, q in enumerate(p.queries)
                ],
            }
        )
    return {
        "uid": dash.uid,
        "title": dash.title,
        "tags": ["vigil"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": list(dash.variables)},
        "panels": panels,
    }


def write_all(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dash in DASHBOARDS:
        path = out_dir / f"{dash.uid}.json"
        path.write_text(json.dumps(render(dash), indent=2) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR):
        print(written)
