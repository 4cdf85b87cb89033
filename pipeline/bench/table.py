"""The summary table ``vigil bench`` prints from its JSON report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


def render_table(res: dict[str, Any]) -> Table:
    """The summary table: fps, latency quantiles, CPU and memory per mode, and the ratios."""
    title = f"vigil bench: {res['cameras']} cameras x {Path(res['video']).name}, {res['seconds']:g} s, {res['device']}"
    if (precision := res.get("precision")) is not None:
        export = res.get("detector_export")  # through ONNX Runtime / TensorRT: named with its precision
        vit = f"ViT {precision['classifier']}" if "classifier" in precision else "no ViT"
        title += f" (detector {f'{export} ' if export else ''}{precision['detector']}, {vit})"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("mode", "fps", "p50", "p95", "p99", "CPU%", "MiB", "/base", "/limit"):
        table.add_column(col, justify="left" if col == "mode" else "right", no_wrap=True)
    for key in ("baseline", "vigil", "limit"):
        r = res[key]
        table.add_row(
            key if r["mode"] != "workers" else "vigil no-ray",
            f"{r['fps']:.1f}",
            _ms(r.get("latency_p50_s")),
            _ms(r.get("latency_p95_s")),
            _ms(r.get("latency_p99_s")),
            f"{r['cpu_percent']:.0f}",
            f"{r['rss_bytes'] / 2**20:.0f}",
            f"{r['fps'] / res['baseline']['fps']:.2f}",
            f"{r['fps'] / res['limit']['fps']:.2f}",
        )
    table.caption = (
        "p50/p95/p99: capture -> result latency in ms; MiB: peak RSS of the process tree; "
        f"limit: {res['limit']['formula']}"
    )
    one = res["limit"].get("one_core")
    if one and one["fps"] != res["limit"]["fps"]:
        table.caption += f"; one core measured while the others idle, times the cores: {one['fps']:.1f} fps"
    if (on_cpu := res["limit"].get("on_cpu_time")) is not None:
        table.caption += (
            f"; from CPU time instead of wall time (a machine that took nothing from busy cores): "
            f"{on_cpu['fps']:.1f} fps, vigil ÷ that: {res['vigil']['fps'] / on_cpu['fps']:.2f}"
        )
    if (on_inputs := res["limit"].get("on_model_inputs")) is not None:
        table.caption += (
            f"; with the models fed the scaled-down frames Vigil feeds them: {on_inputs['fps']:.1f} fps "
            f"({on_inputs['formula']}), vigil ÷ that: {res['vigil']['fps'] / on_inputs['fps']:.2f}"
        )
    if machine := res["vigil"].get("machine"):
        table.caption += (
            f"; the machine's {machine['cpus']} CPUs during vigil's window: {machine['tree_cores']:.2f} "
            f"in vigil's processes, {machine['outside_tree_cores']:.2f} in other processes and the kernel, "
            f"{machine['idle_cores']:.2f} idle, {machine['steal_cores']:.2f} taken by the hypervisor"
        )
    return table
