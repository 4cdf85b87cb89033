"""``vigil bench``: Vigil against what a user would write and against the compute limit, on the same
input (N copies of one video decoded as N cameras), the same models, the same image size.

Modes, each in its own child process (``pipeline.bench.child``) whose whole process tree (Ray's
processes and the embedded Redis included) is sampled with psutil for CPU and memory
(``pipeline.bench.meter``):

- ``limit`` (``pipeline.bench.limit``): the detector's and ViT's forward passes on pre-decoded frames
  at the best batch size, plus decoding alone; ``limit.fps`` is what the machine could do if the
  stages were perfectly pipelined (the formula is in the result: cores over summed seconds per frame
  on a CPU box, measured in one process per core at once, since cores busy together are each slower
  than one alone; wall-clock seconds, as Vigil's frames/s are, so the limit too pays what the machine
  takes from busy cores, and ``limit.on_cpu_time`` is the bound from CPU seconds, which pays none of
  it; ``limit.one_core`` keeps the one-core measurement scaled by the cores).
- ``baseline`` (``pipeline.bench.baseline``): one thread per camera, each with its own YOLO running
  ``model.track(stream=True)`` and the same ViT on every frame (the ultralytics multi-stream
  threading pattern).
- ``vigil`` (``pipeline.bench.vigil``): the real pipeline (Ray, Redis, metrics); or ``workers`` with
  ``no_ray`` (``pipeline.bench.no_ray``): Vigil's batched Detector/Classifier, decoder and tracker
  in-process, where Ray cannot be installed.

The orchestration overhead (``pipeline.bench.overhead``) is the vigil tree's CPU time minus decoding,
the model calls and the pipeline's own per-frame work (tracking, resizing, event rules), each
measured inside the run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.bench.cores import usable_cores
from pipeline.bench.meter import TreeMeter
from pipeline.bench.overhead import model_speed, overhead
from pipeline.bench.protocol import MARK
from pipeline.bench.spec import BenchSpec, ModeSpec
from pipeline.core.config import VigilConfig
from pipeline.core.config.cameras import FILE_IN_FLIGHT

Progress = Callable[[str, float | None], None]
LOG_DIR = Path(".vigil") / "bench" / "logs"  # each mode's stderr, kept for the last run
CPU_BATCHES = (1, 2, 4, 8, 16)
GPU_BATCHES = (1, 4, 8, 16, 32, 64)


class BenchError(RuntimeError):
    """The benchmark could not run (a mode failed); the message says which and why."""


def child_env(allow_download: bool) -> dict[str, str]:
    """The children's environment: no telemetry, no hub access (as ``pipeline.runtime.driver.offline_env``,
    which cannot be imported where Ray is not installed)."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", YOLO_AUTOINSTALL="0", PYTHONUNBUFFERED="1")
    if not allow_download:
        env.update(YOLO_OFFLINE="1", HF_HUB_OFFLINE="1")
    return env


def run_mode(mode: str, spec: ModeSpec, env: dict[str, str], progress: Progress) -> dict[str, Any]:
    """Run one mode in a child process; returns its result with the tree's CPU and memory."""
    spec_file = spec.workdir / f"{mode}.json"
    spec_file.write_text(spec.to_json())
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{mode}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.bench.child", mode, str(spec_file)],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=env,
        )
        meter = TreeMeter(proc.pid)
        meter.start()
        result, error = None, None
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith(MARK):
                continue
            msg = json.loads(line[len(MARK) :])
            if msg.get("window") == "start":
                meter.open_window()
            elif msg.get("window") == "end":
                meter.close_window()
            elif "progress" in msg:
                progress(f"{mode}: {msg['progress']}", msg.get("fraction"))
            result, error = msg.get("result", result), msg.get("error", error)
        proc.wait()
    if result is None:
        tail = [ln for ln in log_path.read_text().splitlines() if ln.strip()][-1:]
        raise BenchError(error or f"{mode} ended with code {proc.returncode}: {' '.join(tail)} (log: {log_path})")
    return {**result, **meter.result()}


def run_bench(spec: BenchSpec, progress: Progress) -> dict[str, Any]:
    """Run limit, baseline and vigil (or workers) one after the other; returns the JSON report."""
    import torch

    gpu = torch.cuda.is_available()
    sizes = spec.batch_sizes or (GPU_BATCHES if gpu else CPU_BATCHES)
    env = child_env(spec.cfg.models.allow_download)
    out: dict[str, Any] = {
        "cameras": spec.cameras,
        "seconds": spec.seconds,
        "video": str(spec.video),
        "imgsz": spec.cfg.models.detector.imgsz,
        "in_flight": spec.in_flight or FILE_IN_FLIGHT,
        "detector_export": spec.cfg.models.detector.export,
        "placement": spec.cfg.ray.placement,
        "cameras_per_host": spec.cfg.ray.cameras_per_host,
        "pin_hosts": spec.cfg.ray.pin_hosts,
        "detector_replicas": spec.cfg.ray.detector.replicas,
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "precision": model_precision(spec.cfg, "cuda:0" if gpu else "cpu"),
        "cores": usable_cores(),
        "load_average_before": list(os.getloadavg()),
    }
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        mode_spec = ModeSpec(
            spec.cfg, spec.video.resolve(), spec.cameras, spec.seconds, sizes, Path(tmp), spec.in_flight
        )
        for r in range(spec.rounds):
            res: dict[str, Any] = {}
            tagged = functools.partial(_tagged, progress, f"round {r + 1}/{spec.rounds}: " if spec.rounds > 1 else "")
            for key, mode in (
                ("limit", "limit"),
                ("baseline", "baseline"),
                ("vigil", "workers" if spec.no_ray else "vigil"),
            ):
                try:
                    res[key] = run_mode(mode, mode_spec, env, tagged)
                except OSError as exc:
                    raise BenchError(f"{mode}: {exc}") from None
                res[key]["mode"] = mode
            res["ratio_vs_baseline"] = res["vigil"]["fps"] / res["baseline"]["fps"]
            res["ratio_vs_limit"] = res["vigil"]["fps"] / res["limit"]["fps"]
            if (on_inputs := res["limit"].get("on_model_inputs")) is not None:
                res["ratio_vs_limit_on_model_inputs"] = res["vigil"]["fps"] / on_inputs["fps"]
            if (on_cpu := res["limit"].get("on_cpu_time")) is not None:
                res["ratio_vs_limit_on_cpu_time"] = res["vigil"]["fps"] / on_cpu["fps"]
            res["vigil"]["overhead"] = overhead(res["limit"], res["vigil"])
            speed = model_speed(res["limit"], res["vigil"])
            if speed is not None:  # the limit at the speed the machine ran the models during the run
                res["vigil"]["model_speed_vs_limit_run"] = speed
                res["ratio_vs_limit_at_run_speed"] = res["ratio_vs_limit"] / speed
            rounds.append(res)
    out["load_average_after"] = list(os.getloadavg())
    out.update(median_round(rounds))
    if len(rounds) > 1:
        out["rounds"] = [round_summary(r) for r in rounds]
    return out


def model_precision(cfg: VigilConfig, device: str) -> dict[str, str]:
    """What the detector and the ViT compute in on ``device`` (every mode runs the same; no
    ``classifier`` entry without a ViT)."""
    from workers.common import precision_on
    from workers.detector import detector_precision

    out = {"detector": detector_precision(cfg.models.detector, device)}
    if (cls := cfg.models.classifier) is not None:
        out["classifier"] = precision_on(cls.half, cls.cpu_precision, device, "classifier")
    return out


def _tagged(progress: Progress, tag: str, text: str, fraction: float | None) -> None:
    progress(tag + text, fraction)


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round whose Vigil / limit ratio is the median (the lower one of an even count): each
    ratio comes from modes run minutes apart, so a drifting machine moves rounds, not modes."""
    ranked = sorted(rounds, key=lambda r: r["ratio_vs_limit"])
    return ranked[(len(ranked) - 1) // 2]


def round_summary(res: dict[str, Any]) -> dict[str, Any]:
    """One round's headline figures (the JSON's ``rounds`` list)."""
    return {
        "vigil_fps": res["vigil"]["fps"],
        "baseline_fps": res["baseline"]["fps"],
        "limit_fps": res["limit"]["fps"],
        "ratio_vs_baseline": res["ratio_vs_baseline"],
        "ratio_vs_limit": res["ratio_vs_limit"],
        "ratio_vs_limit_at_run_speed": res.get("ratio_vs_limit_at_run_speed"),
        "ratio_vs_limit_on_model_inputs": res.get("ratio_vs_limit_on_model_inputs"),
        "ratio_vs_limit_on_cpu_time": res.get("ratio_vs_limit_on_cpu_time"),
        "orchestration_share": res["vigil"]["overhead"].get("orchestration_share"),
        "limit_fps_one_core_scaled": res["limit"].get("one_core", {}).get("fps"),
    }
