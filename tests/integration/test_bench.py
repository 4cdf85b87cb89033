"""`vigil bench` as a user runs it: a tiny run through the CLI writes the JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

MODELS = {"detector": {"weights": "yolo11n.yaml", "imgsz": 160}, "classifier": {"backend": {"kind": "torchvision"}}}


def test_bench_reports_every_mode(tmp_path: Path, short_mp4: Path) -> None:
    """Every mode, with ``--cpu-precision bf16``: bf16 where the CPU has it, fp32 elsewhere (the
    XX"""
    extra = ["--cpu-precision", "bf16"]
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({"cameras": [{"id": "unused", "url": str(short_mp4)}], "models": MODELS}))
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pipeline.cli.app", "bench", "--cameras", "2", "--seconds", "2"]
    cmd += ["--config", str(config), "--video", str(short_mp4), "--batch-sizes", "1,2", "--json", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)

    assert proc.returncode == 0, proc.stderr
    assert "vigil bench" in proc.stdout
    res = json.loads(out.read_text())
    for mode in ("vigil", "baseline", "limit"):
        assert res[mode]["fps"] > 0, mode
        assert res[mode]["cpu_percent"] > 0, mode
        assert res[mode]["rss_bytes"] > 0, mode
    assert res["vigil"]["latency_p95_s"] > 0
    assert res["baseline"]["latency_p95_s"] > 0
    assert res["ratio_vs_baseline"] > 0
    assert res["ratio_vs_limit"] > 0
    # Where the machine's cores went during Vigil's window: its processes used some, none was lost.
    machine = res["vigil"]["machine"]
    assert machine["tree_cores"] > 0
    assert machine["busy_cores"] + machine["idle_cores"] + machine["steal_cores"] > 0.75 * (os.cpu_count() or 1)
    from workers.common import native_bf16

    ran = "bf16" if native_bf16() else "fp32"  # bf16 where the CPU has it, else fp32
    assert res["precision"] == {"detector": ran, "classifier": ran}
    assert f"(detector {ran}, ViT {ran})" in " ".join(proc.stdout.split())  # the title, however wrapped
    # On a CPU box the limit's models run on every core at once (cores slow each other down), and
    # the one-core measurement scaled by the cores is kept beside it.
    limit = res["limit"]
    if limit["device"] == "cpu":
        assert limit["one_core"]["fps"] > 0
        if limit["cores"] > 1:
            assert f"measured on all {limit['cores']} cores at once" in limit["formula"]
        # The models timed on what the cameras feed them too (frames scaled near the decoder): the
        # speed match uses those, and the same bound on them is reported beside the limit.
        assert set(limit["vit_model_input"]) == set(limit["vit"]) == {"1", "2"}
        assert limit["resize"]["cpu_ms_per_frame"] > 0
        # The limit is on the wall clock, as Vigil's frames/s are; the CPU-time bound is beside it.
        assert "wall time" in limit["formula"]
        assert limit["on_cpu_time"]["fps"] > 0 and "cpu time" in limit["on_cpu_time"]["formula"]
        assert res["ratio_vs_limit_on_cpu_time"] == res["vigil"]["fps"] / limit["on_cpu_time"]["fps"]
        assert res["ratio_vs_limit_on_model_inputs"] == res["vigil"]["fps"] / limit["on_model_inputs"]["fps"]


def test_bench_rejects_a_missing_video(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli.app", "bench", "--video", str(tmp_path / "nope.mp4")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    assert proc.returncode == 2
    assert "file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_without_a_vit_or_a_clip_head_measures_the_detector_alone(tmp_path: Path, short_mp4: Path) -> None:
    """A config with ``models.classifier: null`` and ``models.temporal: null`` (as configs/cameras.yaml):
    the baseline, the limit and Vigil all run the detector alone, and say so; ``--max-batch`` leaves
    the switched-off ViT off."""
    config = tmp_path / "bench.yaml"
    models = {"detector": MODELS["detector"], "classifier": None, "temporal": None}
    config.write_text(yaml.safe_dump({"cameras": [{"id": "unused", "url": str(short_mp4)}], "models": models}))
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pipeline.cli.app", "bench", "--cameras", "2", "--seconds", "2", "--max-batch", "2"]
    cmd += ["--config", str(config), "--video", str(short_mp4), "--batch-sizes", "1,2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)

    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    for mode in ("vigil", "baseline", "limit"):
        assert res[mode]["fps"] > 0, mode
    assert res["precision"] == {"detector": "fp32"}
    assert "(detector fp32, no ViT)" in " ".join(proc.stdout.split())
    limit = res["limit"]
    assert "vit" not in limit and "vit_model_input" not in limit and "ViT" not in limit["formula"]
    assert set(limit["best_batch"]) == {"detector"}
    assert set(res["vigil"]["batch_mean"]) == {"detector"}  # no ViT and no clip head called in the run
