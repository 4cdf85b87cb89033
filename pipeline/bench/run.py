"""``vigil bench`` (issue #7): Vigil against what a user would write and against the compute limit,
on the same input (N copies of one video decoded as N cameras), the same models, the same image size.

Modes, each in its own child process (``pipeline.bench.modes``) whose whole process tree (Ray's
processes and the embedded Redis included) is sampled with psutil for CPU and memory:

- ``limit``: the detector's and ViT's forward passes on pre-decoded frames at the best batch size,
  plus decoding alone; ``limit.fps`` is what the machine could do if the stages were perfectly
  pipelined (the formula is in the result: cores over summed seconds per frame on a CPU box,
  measured in one process per core at once, since cores busy together are each slower than one
  alone; wall-clock seconds, as Vigil's frames/s are, so the limit too pays what the machine takes
  from busy cores, and ``limit.on_cpu_time`` is the bound from CPU seconds, which pays none of it;
  ``limit.one_core`` keeps the one-core measurement scaled by the cores).
- ``baseline``: one thread per camera, each with its own YOLO running ``model.track(stream=True)``
  and the same ViT on every frame (the ultralytics multi-stream threading pattern).
- ``vigil``: the real pipeline (Ray, Redis, metrics); or ``workers`` with ``no_ray``: Vigil's batched
  Detector/Classifier, decoder and tracker in-process, where Ray cannot be installed.

The orchestration overhead is the vigil tree's CPU time minus decoding, the model calls and the
pipeline's own per-frame work (tracking, resizing, event rules), each measured inside the run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from rich import box
from rich.table import Table

from pipeline.bench.modes import MARK, ModeSpec, usable_cores
from pipeline.core.config import VigilConfig

Progress = Callable[[str, float | None], None]
DEFAULT_VIDEO = Path(".vigil") / "bench" / "street.mp4"
LOG_DIR = Path(".vigil") / "bench" / "logs"  # each mode's stderr, kept for the last run
CPU_BATCHES = (1, 2, 4, 8, 16)
GPU_BATCHES = (1, 4, 8, 16, 32, 64)
SAMPLE_EVERY_S = 0.5
# Ray's own processes, by what their command line starts with.
_RAY_SYSTEM = ("raylet", "gcs_server", "dashboard", "runtime_env", "log_monitor", "monitor", "ray_client")


class BenchError(RuntimeError):
    """The benchmark could not run (a mode failed); the message says which and why."""


@dataclass(frozen=True)
class BenchSpec:
    cfg: VigilConfig
    video: Path
    cameras: int
    seconds: float
    no_ray: bool = False
    batch_sizes: tuple[int, ...] | None = None
    in_flight: int = 2
    rounds: int = 1  # limit, baseline, vigil again: the machine's speed drifts between modes


def child_env(allow_download: bool) -> dict[str, str]:
    """The children's environment: no telemetry, no hub access (as ``pipeline.runtime.driver.offline_env``,
    which cannot be imported where Ray is not installed)."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", YOLO_AUTOINSTALL="0", PYTHONUNBUFFERED="1")
    if not allow_download:
        env.update(YOLO_OFFLINE="1", HF_HUB_OFFLINE="1")
    return env


def process_role(proc: psutil.Process, root_pid: int) -> str:
    """Who a process in a mode's tree is: the mode's own process, a Vigil actor, Ray, Redis."""
    if proc.pid == root_pid:
        return "driver"
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    if cmd.startswith("ray::"):
        actor = cmd[5:].split(".", 1)[0].split()[0]
        return {
            "CameraHost": "camera",
            "Detector": "detector",
            "Classifier": "classifier",
            "VisionWorker": "vision",
        }.get(actor, "temporal" if actor == "TemporalHead" else "ray-worker-idle")
    if "redis-server" in cmd:
        return "redis"
    name = Path(cmd.split()[0]).name if cmd else proc.name()
    if any(name.startswith(r) or f"/{r}" in cmd for r in _RAY_SYSTEM) or "ray/" in cmd:
        return "ray-system"
    return "other"


class TreeMeter:
    """CPU seconds and memory of a process and all its descendants, sampled in a thread.

    CPU over the window is the sum, per process, of its last sample minus its value when the
    window opened (0 for processes started inside it). Memory is the peak of the summed RSS
    (shared pages, e.g. Ray's object store, count once per process that maps them)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._base: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._roles: dict[int, str] = {}
        self.peak_rss = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = self._t1 = 0.0
        self._machine0: Any = None  # psutil.cpu_times() of the whole machine at the window's ends
        self._machine1: Any = None
        self._open = False
        self._closed = False  # once closed, late samples (the sampler thread's last one) change nothing

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        with self._lock:
            if self._closed:
                return
            for p in procs:
                try:
                    times = p.cpu_times()
                    rss += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                # Asked every time: a Ray worker names itself (ray::Detector) only once it hosts an actor.
                self._roles[p.pid] = process_role(p, self.root.pid)
                cpu = times.user + times.system
                if self._open:
                    self._base.setdefault(p.pid, 0.0)
                    self._last[p.pid] = (self._roles[p.pid], cpu)
                else:
                    self._base[p.pid] = cpu
            if self._open:
                self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def open_window(self) -> None:
        self._sample()
        with self._lock:
            self._open, self._t0 = True, time.perf_counter()
            self._machine0 = psutil.cpu_times()
        self._sample()

    def close_window(self) -> None:
        self._sample()
        with self._lock:
            self._open, self._closed, self._t1 = False, True, time.perf_counter()
            self._machine1 = psutil.cpu_times()
        self._stop.set()

    def result(self) -> dict[str, Any]:
        wall = max(1e-9, self._t1 - self._t0)
        by_role: dict[str, float] = {}
        for pid, (role, cpu) in self._last.items():
            by_role[role] = by_role.get(role, 0.0) + max(0.0, cpu - self._base.get(pid, 0.0))
        total = sum(by_role.values())
        return {
            "cpu_percent": 100 * total / wall,
            "cpu_s": total,
            "cpu_s_by_process": dict(sorted(by_role.items())),
            "rss_bytes": self.peak_rss,
            "window_s": wall,
            "machine": self._machine(wall, total),
        }

    def _machine(self, wall: float, tree_cpu_s: float) -> dict[str, float]:
        """The whole machine over the window, in cores: what the mode's tree used, what other
        processes and the kernel used, what stayed idle and what the hypervisor took (steal)."""
        if self._machine0 is None or self._machine1 is None:
            return {}
        d = {f: getattr(self._machine1, f) - getattr(self._machine0, f) for f in self._machine1._fields}
        idle = d.get("idle", 0.0) + d.get("iowait", 0.0)
        steal = d.get("steal", 0.0)
        busy = sum(d.values()) - idle - steal - d.get("guest", 0.0) - d.get("guest_nice", 0.0)
        return {
            "cpus": psutil.cpu_count() or 0,  # /proc/stat's: every CPU, not only those the bench may use
            "busy_cores": busy / wall,
            "tree_cores": tree_cpu_s / wall,
            "outside_tree_cores": (busy - tree_cpu_s) / wall,
            "idle_cores": idle / wall,
            "steal_cores": steal / wall,
        }


def run_mode(mode: str, spec: ModeSpec, env: dict[str, str], progress: Progress) -> dict[str, Any]:
    """Run one mode in a child process; returns its result with the tree's CPU and memory."""
    spec_file = spec.workdir / f"{mode}.json"
    spec_file.write_text(spec.to_json())
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{mode}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.bench.modes", mode, str(spec_file)],
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


# The camera actors' CPU by step (``vigil_camera_cpu_seconds``), by what the step is: the pipeline's
# own work (resizing to the model size, motion gating, ByteTrack, the frame summary, event rules), which
# a user's loop does too, and orchestration: the Ray calls, delivery to Redis (spool, snapshots,
# the sender thread) and metrics. "decode" is decoding, measured where it happens.
WORK_STEPS = ("prepare", "track", "features", "events")
ORCHESTRATION_STEPS = {
    "ray_calls": ("submit", "coalesce", "wait", "crops", "clip", "queue"),
    "redis": ("publish", "redis"),
    "metrics": ("metrics",),
}
NOT_WORKERS = ("camera", "driver")
# Models that can run inside the camera hosts, by the host step that clocks them: ray.clip_head: hosts
# ("clip_head") and ray.vision: hosts ("vision"; "crop_model" with models.crops).
HOST_MODEL_STEPS = {"clip_head": ("temporal",), "vision": ("detector", "classifier"), "crop_model": ("crops",)}


def overhead(limit: dict[str, Any], vigil: dict[str, Any]) -> dict[str, Any]:
    """CPU the pipeline spent beyond decoding and the model calls of the frames it processed, and
    how much of that is orchestration (Ray, Redis, metrics) rather than the pipeline's own work.

    The model calls' CPU is what the workers measured during the run (``vigil_model_cpu_seconds``:
    the same machine at the same moment, so a CPU that runs faster or slower between modes does
    not leak into the overhead); without it (``--no-ray``), the limit run's single-threaded CPU
    time at the batch size nearest to the workers' mean batch. Decoding, and the split of the rest,
    come from the cameras' own step clocks (``vigil_camera_cpu_seconds``) when the run has them;
    decoding otherwise from the limit run."""

    def at_batch(table: dict[str, dict[str, float]], batch: float) -> float:
        return table[min(table, key=lambda b: abs(int(b) - batch))]["cpu_ms_per_frame"] / 1000

    frames = vigil["frames"]
    batches = vigil.get("batch_mean", {})
    measured = vigil.get("model_cpu_s", {})
    steps: dict[str, float] = vigil.get("camera_cpu_s", {})
    estimate = {
        "detector": frames * at_batch(limit["detector"], batches.get("detector", 1.0)),
        "classifier": frames * at_batch(limit["vit"], batches.get("classifier", 1.0)),
    }
    source = "measured" if all(measured.get(k, 0) > 0 for k in estimate) else "limit"
    models = {k: measured.get(k, 0.0) for k in measured} if source == "measured" else estimate
    dec_s = steps["decode"] if "decode" in steps else frames * limit["decode"]["cpu_ms_per_frame"] / 1000
    total = vigil["cpu_s"]
    rest = total - sum(models.values()) - dec_s
    out: dict[str, Any] = {
        "cpu_s_total": total,
        "cpu_s_forward_detector": models["detector"],
        "cpu_s_forward_vit": models["classifier"],
        "cpu_s_models": models,  # every model the run called (the clip head too, when measured)
        "forward_source": source,
        "forward_estimate_from_limit": estimate,
        "cpu_s_decode": dec_s,
        "decode_source": "measured" if "decode" in steps else "limit",
        "cpu_s_other": rest,
        "other_share": rest / total if total > 0 else None,
        "note": "other = everything but decode and forward passes: Ray (transport, object store, raylet/GCS), "
        "tracking, clip head, events, Redis, metrics, Python threads, and batching inefficiency",
    }
    if not steps or source != "measured":
        return out
    by_actor: dict[str, float] = vigil.get("cpu_s_by_actor", {})
    work = {k: steps.get(k, 0.0) for k in WORK_STEPS}
    parts = {name: sum(steps.get(k, 0.0) for k in keys) for name, keys in ORCHESTRATION_STEPS.items()}
    # Camera actors' CPU their step clocks do not see: Ray's core-worker threads, the metrics exporter.
    # Models run in the camera processes (HOST_MODEL_STEPS) are counted with the models; what their
    # steps spent beyond the model calls (hand-offs, result lists) with the workers' dispatch.
    host_steps = sum(v for k, v in steps.items() if k in HOST_MODEL_STEPS)
    in_cameras = sum(models.get(m, 0.0) for k, names in HOST_MODEL_STEPS.items() if k in steps for m in names)
    parts["camera_unattributed"] = by_actor.get("camera", 0.0) - sum(steps.values())
    workers = sum(v for k, v in by_actor.items() if k not in NOT_WORKERS)
    # dispatch, deserialising, batching (in worker actors, or around the models in the hosts)
    parts["workers_beyond_model_calls"] = workers - (sum(models.values()) - in_cameras) + (host_steps - in_cameras)
    parts["driver"] = by_actor.get("driver", 0.0)
    parts["ray_system_and_redis_server"] = total - sum(by_actor.values())  # raylet, GCS, idle workers, redis
    orchestration = sum(parts.values())
    out.update(
        {
            "cpu_s_pipeline_work": work,  # resize, ByteTrack, frame summaries, event rules
            "cpu_s_orchestration": parts,
            "orchestration_share": orchestration / total if total > 0 else None,
        }
    )
    return out


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
        "in_flight": spec.in_flight,
        "detector_export": spec.cfg.models.detector.export,
        "vision": spec.cfg.ray.vision,
        "cameras_per_host": spec.cfg.ray.cameras_per_host,
        "pin_hosts": spec.cfg.ray.pin_hosts,
        "fused": spec.cfg.ray.fused,
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
    """What the detector and the ViT compute in on ``device`` (every mode runs the same)."""
    from workers.common import precision_on
    from workers.detector import detector_precision

    cls = cfg.models.classifier
    return {
        "detector": detector_precision(cfg.models.detector, device),
        "classifier": precision_on(cls.half, cls.cpu_precision, device, "classifier"),
    }


def per_frame_at(table: dict[str, dict[str, float]], batch: float) -> float:
    """CPU ms per frame from a limit table at a (mean) batch size, interpolated between the sizes measured."""
    sizes = sorted(int(b) for b in table)
    batch = min(max(batch, sizes[0]), sizes[-1])
    hi = next(b for b in sizes if b >= batch)
    lo = max((b for b in sizes if b <= batch), default=hi)
    a, b = table[str(lo)]["cpu_ms_per_frame"], table[str(hi)]["cpu_ms_per_frame"]
    return a if hi == lo else a + (b - a) * (batch - lo) / (hi - lo)


def model_speed(limit: dict[str, Any], vigil: dict[str, Any]) -> float | None:
    """How fast the machine ran the detector and the ViT during the Vigil run relative to the limit
    run (1.0: the same; 0.8: each call cost 25 % more CPU), from what the calls cost in the run
    (``vigil_model_cpu_seconds``) and what the limit run measured at the run's mean batch sizes,
    on the frames the pipeline feeds the models (scaled down near the decoder: the ViT's own
    scaling then costs less) where the limit run timed them, else on the decoded frames.

    A 2-core VM's speed drifts 10-20 % within minutes (BENCHMARKS.md) and the modes run minutes
    apart, so ``ratio_vs_limit`` moves with it; dividing by this speed compares the two at the same
    speed. Where the calls ran slower in the run, the matched ratio forgives that whatever the cause
    (a slower machine, or Vigil's own threads sharing the caches), so there the truth lies between
    the two. CPU only (on a GPU the limit is wall time). The limit is on the wall clock and this
    speed on CPU time: on one machine the two scale together, so the quotient stays a fair match."""
    measured, batches = vigil.get("model_cpu_s", {}), vigil.get("batch_mean", {})
    spent = measured.get("detector", 0.0) + measured.get("classifier", 0.0)
    if limit.get("device") != "cpu" or spent <= 0 or not vigil.get("frames"):
        return None
    det, vit = limit.get("detector_model_input", limit["detector"]), limit.get("vit_model_input", limit["vit"])
    expected_ms = per_frame_at(det, batches.get("detector", 1.0)) + per_frame_at(vit, batches.get("classifier", 1.0))
    return float(vigil["frames"] * expected_ms / 1000 / spent)


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


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f}"


def render_table(res: dict[str, Any]) -> Table:
    """The summary table: fps, latency quantiles, CPU and memory per mode, and the ratios."""
    title = f"vigil bench: {res['cameras']} cameras x {Path(res['video']).name}, {res['seconds']:g} s, {res['device']}"
    if (precision := res.get("precision")) is not None:
        export = res.get("detector_export")  # through ONNX Runtime / TensorRT: named with its precision
        title += f" (detector {f'{export} ' if export else ''}{precision['detector']}, ViT {precision['classifier']})"
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


def default_video(seconds: float = 20.0, fps: int = 10) -> Path:
    """The generated street scene every run reuses (rendered once)."""
    from pipeline.ml.synth import ensure_video

    return ensure_video(DEFAULT_VIDEO, seed=1, scene="street", seconds=seconds, fps=fps)
