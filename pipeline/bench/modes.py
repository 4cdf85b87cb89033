"""The measured side of ``vigil bench``: each mode runs in its own child process (``pipeline.bench.run``
starts it) so that the CPU time and memory sampled over its process tree belong to that mode alone.

    python -m pipeline.bench.modes MODE SPEC.json

Modes: ``limit`` (forward passes on pre-decoded frames, decode alone), ``baseline`` (one thread per
camera running ultralytics ``model.track(stream=True)`` plus the ViT), ``vigil`` (the real pipeline:
Ray, Redis, metrics), ``workers`` (Vigil's batched Detector/Classifier workers, decoder and tracker
in-process, without Ray or Redis). The child reports to its parent on stdout, one JSON object per
line after ``MARK``: ``{"progress": "...", "fraction": 0.4}``, ``{"window": "start"|"end"}`` (the
measurement window, between warm-up and shutdown) and finally ``{"result": {...}}``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import CameraConfig, VigilConfig, parse_config

MARK = "@@vigil-bench "
Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ModeSpec:
    """What a child measures: ``cameras`` copies of ``video`` for ``seconds`` with ``cfg``'s models."""

    cfg: VigilConfig
    video: Path
    cameras: int
    seconds: float
    batch_sizes: tuple[int, ...]
    workdir: Path
    in_flight: int = 2  # Vigil's cameras: frames in the model workers at once

    def to_json(self) -> str:
        return json.dumps(
            {
                "cfg": self.cfg.model_dump(mode="json"),
                "video": str(self.video),
                "cameras": self.cameras,
                "seconds": self.seconds,
                "batch_sizes": list(self.batch_sizes),
                "workdir": str(self.workdir),
                "in_flight": self.in_flight,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ModeSpec:
        raw = json.loads(text)
        return cls(
            parse_config(raw["cfg"], "<bench>"),
            Path(raw["video"]),
            int(raw["cameras"]),
            float(raw["seconds"]),
            tuple(int(b) for b in raw["batch_sizes"]),
            Path(raw["workdir"]),
            int(raw["in_flight"]),
        )


def report(**message: Any) -> None:
    """One protocol line to the parent (stdout is shared with libraries, hence the marker)."""
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def quantiles_s(samples: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of latency samples in seconds (None without samples)."""
    if len(samples) < 2:
        value = samples[0] if samples else None
        return {"latency_p50_s": value, "latency_p95_s": value, "latency_p99_s": value}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"latency_p50_s": cuts[49], "latency_p95_s": cuts[94], "latency_p99_s": cuts[98]}


def video_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    return fps if 0 < fps <= 120 else 10.0


def bench_cameras(spec: ModeSpec) -> tuple[CameraConfig, ...]:
    """N file cameras on the same video: every frame, backpressure, looping so none runs dry."""
    fps = video_fps(spec.video)
    return tuple(
        CameraConfig(
            id=f"cam{i}",
            url=str(spec.video),
            mode="file",  # type: ignore[arg-type]
            loop=True,
            fps=fps,
            max_in_flight=spec.in_flight,
        )
        for i in range(spec.cameras)
    )


# -- limit --------------------------------------------------------------------------------------


def decode_frames(video: Path, keep: int, min_s: float) -> tuple[list[Frame], dict[str, float]]:
    """Decode ``video`` (looping) for at least ``min_s`` and one pass, with the decoder Vigil uses
    (OpenCV's FFmpeg backend, one decoding thread: the least CPU per frame). Returns up to ``keep``
    frames and the decode speed."""
    frames: list[Frame] = []
    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        ok, image = cap.read()
        while ok:
            n += 1
            if len(frames) < keep:
                frames.append(np.asarray(image, dtype=np.uint8))
            ok, image = cap.read()
        cap.release()
        if n == 0:
            raise RuntimeError(f"no decodable frames in {video}")
        if time.perf_counter() - wall0 >= min_s:
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return frames, {
        "frames": n,
        "fps": n / wall,
        "cpu_ms_per_frame": 1000 * cpu / n,
        "wall_ms_per_frame": 1000 * wall / n,
    }


def time_batches(
    fn: Callable[[list[Frame]], object],
    inputs: dict[str, list[Frame]],
    sizes: tuple[int, ...],
    min_s: float,
    passes: int = 4,
    progress: bool = True,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-frame wall and CPU time of ``fn`` at each batch size for each set of ``inputs`` (after
    one warm-up call each): ``{input name: {size: {"wall_ms_per_frame", "cpu_ms_per_frame"}}}``.

    The (input, size) pairs take turns, ``passes`` times, ``min_s / passes`` each: a VM's speed
    drifts within seconds, and timing each size in one stretch would turn that drift into
    differences between sizes (the bench matches the limit to the Vigil run's speed by comparing
    batch sizes)."""
    batches = {(name, b): [frames[i % len(frames)] for i in range(b)] for name, frames in inputs.items() for b in sizes}
    for batch in batches.values():
        fn(batch)
    totals = {key: [0.0, 0.0, 0.0] for key in batches}  # frames, wall, cpu
    for p in range(passes):
        for key, batch in batches.items():
            calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
            while calls < 1 or time.perf_counter() - wall0 < min_s / passes:
                fn(batch)
                calls += 1
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            t = totals[key]
            t[0], t[1], t[2] = t[0] + calls * len(batch), t[1] + wall, t[2] + cpu
        if progress:
            report(progress=f"limit: pass {p + 1}/{passes} done")
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in inputs}
    for (name, b), (frames_done, wall, cpu) in totals.items():
        out[name][str(b)] = {
            "wall_ms_per_frame": 1000 * wall / frames_done,
            "cpu_ms_per_frame": 1000 * cpu / frames_done,
        }
    return out


def time_resize(frames: list[Frame], longest_px: int, min_s: float = 0.5) -> dict[str, float]:
    """CPU and wall ms per frame of scaling decoded frames to the models' size as Vigil's cameras do."""
    from workers.decoder import model_input

    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while n < len(frames) or time.perf_counter() - wall0 < min_s:
        model_input(frames[n % len(frames)], longest_px)
        n += 1
    return {
        "cpu_ms_per_frame": 1000 * (time.process_time() - cpu0) / n,
        "wall_ms_per_frame": 1000 * (time.perf_counter() - wall0) / n,
    }


def best(table: dict[str, dict[str, float]], key: str) -> tuple[int, float]:
    b = min(table, key=lambda k: table[k][key])
    return int(b), table[b][key]


def measure_compute(
    spec: ModeSpec, sync: Callable[[], object] = lambda: None, progress: bool = True, model_inputs: bool = False
) -> dict[str, Any]:
    """Decode alone, then the detector's and the ViT's batch calls alone, single-threaded, in this
    process; ``sync`` is called before each phase (the limit's processes on every core start
    each phase together).

    ``model_inputs`` (CPU only): the models are also timed, in the same turns, on the frames
    Vigil's cameras give them (scaled down to ``models.input_px`` near the decoder), and that
    scaling alone: ``detector_model_input``, ``vit_model_input``, ``resize``. The limit itself is
    on the decoded frames (as the issue defines it); these say what the same calls cost on what
    the pipeline feeds them, which the bench needs to tell the machine's speed during the Vigil
    run from what the smaller frames save (``pipeline.bench.run.model_speed``)."""
    from workers.classifier import Classifier
    from workers.common import tune_allocator
    from workers.decoder import model_input
    from workers.detector import Detector

    tune_allocator()  # as in Vigil's processes, before decoding: the limit is the best these models do here
    per_size = max(1.0, spec.seconds / (4 * len(spec.batch_sizes)))
    sync()
    frames, decode = decode_frames(spec.video, keep=max(spec.batch_sizes), min_s=min(5.0, spec.seconds / 4))
    det = Detector(spec.cfg.models.detector, torch_threads=1)
    cls = Classifier(spec.cfg.models.classifier, torch_threads=1)
    px = spec.cfg.models.input_px
    inputs = {"decoded": frames}
    out: dict[str, Any] = {"device": det.device, "decode": decode}
    if model_inputs and det.device == "cpu":
        inputs["model_input"] = [model_input(f, px)[0] for f in frames]
        out["resize"] = {"longest_px": px, **time_resize(frames, px)}
    sync()
    det_t = time_batches(det.detect_batch, inputs, spec.batch_sizes, per_size, progress=progress)
    sync()
    cls_t = time_batches(cls.classify_batch, inputs, spec.batch_sizes, per_size, progress=progress)
    out.update(detector=det_t["decoded"], vit=cls_t["decoded"])
    if "model_input" in inputs:
        out.update(detector_model_input=det_t["model_input"], vit_model_input=cls_t["model_input"])
    return out


def _measure_on_core(spec_json: str, core: int | None, barrier: Any, results: Any) -> None:
    """One of the limit's processes on every core (multiprocessing target): pinned to ``core``."""
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        spec = ModeSpec.from_json(spec_json)
        results.put(measure_compute(spec, lambda: barrier.wait(BARRIER_TIMEOUT_S), progress=False, model_inputs=True))
    except Exception as exc:  # the parent reports it; the others must not wait for this one
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def usable_cores() -> int:
    """CPUs this process may run on: its affinity where the OS keeps one (Linux), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


BARRIER_TIMEOUT_S = 600.0
MAX_LIMIT_PROCESSES = 8  # each loads the models: on a big box 8 busy cores say what all of them would


def _collect(what: str, procs: list[Any], cores: list[int | None], barrier: Any, results: Any) -> list[dict[str, Any]]:
    """Every process's result; a process that died without one (killed, out of memory) ends the
    wait at once, with the others released from the barrier."""
    import queue

    outs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 4 * BARRIER_TIMEOUT_S
    while len(outs) < len(procs):
        try:
            outs.append(results.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        dead = [(c, p.exitcode) for c, p in zip(cores, procs, strict=True) if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            barrier.abort()
            why = f"the process on core {dead[0][0]} ended with code {dead[0][1]}" if dead else "timed out"
            raise RuntimeError(f"{what}: {why}")
        if all(p.exitcode == 0 for p in procs):  # all gone, and what they sent is read
            raise RuntimeError(f"{what}: a process ended without a result")
    return outs


def run_on_cores(
    what: str, target: Callable[..., None], args: tuple[Any, ...], cores: list[int | None]
) -> list[dict[str, Any]]:
    """``target(*args, core, barrier, results)`` in a spawned process per entry of ``cores`` (torch
    may be loaded here already: no fork), all at once; each puts one dict on ``results``, or
    ``{"error": ...}`` after aborting ``barrier``. Returns the dicts; raises RuntimeError on an
    error, the real one before the broken barrier it left the others."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(cores)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, c, barrier, results)) for c in cores]
    for proc in procs:
        proc.start()
    try:
        outs = _collect(what, procs, cores, barrier, results)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
    errors = sorted((o["error"] for o in outs if "error" in o), key=lambda e: e.startswith("BrokenBarrierError"))
    if errors:
        raise RuntimeError(f"{what}: {errors[0]}")
    return outs


def measure_on_every_core(spec: ModeSpec, cores: int) -> dict[str, Any]:
    """``measure_compute`` in one process per core (up to ``MAX_LIMIT_PROCESSES``), all at once,
    each phase started together: the models' CPU and wall time per frame when every core is busy (cores share
    caches, memory bandwidth and, on a VM, the host; a 2-vCPU VM here ran them 0-3 % slower per
    frame with both cores busy than with one idle). Averaged over the processes."""
    n = min(cores, MAX_LIMIT_PROCESSES)
    on: list[int | None] = list(sorted(os.sched_getaffinity(0))[:n]) if hasattr(os, "sched_setaffinity") else [None] * n
    outs = run_on_cores("limit on every core", _measure_on_core, (spec.to_json(),), on)

    def mean_table(key: str) -> dict[str, dict[str, float]]:
        return {b: {m: statistics.fmean(o[key][b][m] for o in outs) for m in outs[0][key][b]} for b in outs[0][key]}

    decode = {
        "frames": sum(o["decode"]["frames"] for o in outs),
        "fps": sum(o["decode"]["fps"] for o in outs),
        **{k: statistics.fmean(o["decode"][k] for o in outs) for k in CLOCKS},
    }
    out = {
        "device": outs[0]["device"],
        "processes": n,
        "decode": decode,  # fps: all the processes together
        "detector": mean_table("detector"),
        "vit": mean_table("vit"),
    }
    if "resize" in outs[0]:
        out["detector_model_input"], out["vit_model_input"] = (
            mean_table("detector_model_input"),
            mean_table("vit_model_input"),
        )
        out["resize"] = {
            "longest_px": outs[0]["resize"]["longest_px"],
            **{k: statistics.fmean(o["resize"][k] for o in outs) for k in CLOCKS},
        }
    return out


CLOCKS = ("cpu_ms_per_frame", "wall_ms_per_frame")


def cpu_limit(m: dict[str, Any], cores: int, how: str, clock: str = "wall") -> tuple[float, str]:
    """Frames/s of a CPU box from one measurement: cores / (detector + ViT + decode time per frame).

    ``clock="wall"`` (the limit): each stage's wall time per frame in a process that had a core to
    itself, so the limit pays what the machine takes from every core while all of them are busy
    (the kernel, the VM's own threads, other services: 2-5 % of each core on a 2-vCPU VM here),
    as Vigil's frames per wall second do. ``"cpu"``: its CPU time per frame instead, the
    bound only a machine that took nothing from its cores would reach."""
    key = f"{clock}_ms_per_frame"
    (db, dc), (cb, cc) = best(m["detector"], key), best(m["vit"], key)
    fps = 1000 * cores / (dc + cc + m["decode"][key])
    return fps, (
        f"cores / (detector + ViT + decode {clock} time per frame) = {cores} / ({dc:.1f} + {cc:.1f} + "
        f"{m['decode'][key]:.1f} ms) (detector batch {db}, ViT batch {cb}, single-threaded, {how})"
    )


def cpu_limit_on_model_inputs(m: dict[str, Any], cores: int) -> dict[str, Any] | None:
    """The same bound with the models fed what Vigil's cameras feed them: cores / (detector + ViT
    on model-size frames + decode + the scaling), wall time per frame, or None where ``m`` has no
    such tables."""
    if "resize" not in m:
        return None
    key = "wall_ms_per_frame"
    (db, dc), (cb, cc) = best(m["detector_model_input"], key), best(m["vit_model_input"], key)
    dec, rs = m["decode"][key], m["resize"][key]
    return {
        "fps": 1000 * cores / (dc + cc + dec + rs),
        "formula": f"cores / (detector + ViT on frames scaled to {m['resize']['longest_px']} px + decode + scaling) "
        f"= {cores} / ({dc:.1f} + {cc:.1f} + {dec:.1f} + {rs:.2f} ms) (detector batch {db}, ViT batch {cb}, "
        "wall time per frame)",
    }


def run_limit(spec: ModeSpec) -> dict[str, Any]:
    """Compute only. CPU box: every stage competes for the same cores, so the bound is
    cores / (seconds per frame of detector + ViT + decode), each single-threaded at its best
    batch, measured with every core doing the same at once (a process per core) — what the cores
    do together, which is less than cores x what one does while the others idle (measured too:
    ``one_core``). The seconds are wall-clock seconds of a process alone on its core: what the
    machine leaves the models of each core while all are busy, the clock Vigil's frames/s are on
    (``on_cpu_time``: the same bound from the processes' CPU time, which counts none of what the
    machine takes). GPU box: the models run one after the other on the GPU while decoding runs on
    the cores, so the bound is min(1 / (detector + ViT wall time per frame), cores / decode
    CPU-seconds per frame)."""
    cores = usable_cores()
    report(progress="limit: decoding and loading models", fraction=0.0)
    report(window="start")
    solo = measure_compute(spec, model_inputs=cores == 1)
    out: dict[str, Any] = {"cores": cores, **solo}
    if solo["device"] == "cpu":
        how = "one core measured, the others idle"
        fps, formula = cpu_limit(solo, cores, how)
        out["one_core"] = {**solo, "fps": fps, "formula": formula}
        if cores > 1:
            report(progress=f"limit: the same on {cores} cores at once")
            out.update(measure_on_every_core(spec, cores))
            n = out["processes"]
            how = (
                f"measured on all {cores} cores at once" if n == cores else f"measured on {n} of {cores} cores at once"
            )
            fps, formula = cpu_limit(out, cores, how)
        out["fps"], out["formula"] = fps, formula
        cpu_fps, cpu_formula = cpu_limit(out, cores, how, clock="cpu")
        out["on_cpu_time"] = {"fps": cpu_fps, "formula": cpu_formula}
        if (on_inputs := cpu_limit_on_model_inputs(out, cores)) is not None:
            out["on_model_inputs"] = on_inputs
        db, cb = best(out["detector"], "wall_ms_per_frame")[0], best(out["vit"], "wall_ms_per_frame")[0]
    else:
        (db, dw), (cb, cw) = best(out["detector"], "wall_ms_per_frame"), best(out["vit"], "wall_ms_per_frame")
        model_fps, decode_fps = 1000 / (dw + cw), 1000 * cores / out["decode"]["cpu_ms_per_frame"]
        out["fps"] = min(model_fps, decode_fps)
        out["formula"] = (
            f"min(1 / (detector + ViT per frame), cores / decode CPU per frame) = min(1000 / ({dw:.2f} + "
            f"{cw:.2f} ms), {cores} x 1000 / {out['decode']['cpu_ms_per_frame']:.2f} ms) = min({model_fps:.0f}, "
            f"{decode_fps:.0f}) (detector batch {db}, ViT batch {cb}; the workers' batch calls, their CPU "
            "preprocessing included)"
        )
    report(window="end")
    out["best_batch"] = {"detector": db, "vit": cb}
    return out


# -- baseline -----------------------------------------------------------------------------------


class Recorder:
    """Completion times and latencies of frames, from many threads."""

    def __init__(self, cameras: int) -> None:
        self._lock = threading.Lock()
        self.samples: list[tuple[float, float]] = []  # (done_at monotonic, latency_s)
        self._started: set[int] = set()
        self.all_started = threading.Event()
        self._cameras = cameras
        self.errors: list[str] = []

    def add(self, camera: int, done_at: float, latency_s: float) -> None:
        with self._lock:
            self.samples.append((done_at, latency_s))
            self._started.add(camera)
            if len(self._started) == self._cameras:
                self.all_started.set()

    def fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        self.all_started.set()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        with self._lock:
            lat = [lat for done, lat in self.samples if t0 <= done <= t1]
        return {"fps": len(lat) / (t1 - t0), "frames": len(lat), **quantiles_s(lat)}


def baseline_camera(spec: ModeSpec, camera: int, rec: Recorder, stop: threading.Event) -> None:
    """What a user writes from the ultralytics threading docs: its own YOLO per thread, tracking a
    stream, and the ViT on every frame. Latency: from asking for the frame to the ViT's output."""
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    from workers.classifier import inference_dtype, load_model, preprocess
    from workers.detector import detector_precision, export_detector

    det_cfg, cls_cfg = spec.cfg.models.detector, spec.cfg.models.classifier
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    # The same model file as Vigil's detector: an export where the config asks for one (made by the
    # limit run; ultralytics then runs it with its defaults, as a user's YOLO("model.onnx") does).
    model = YOLO(str(export_detector(det_cfg, device)) if det_cfg.export else det_cfg.weights, task="detect")
    vit, _labels, size = load_model(cls_cfg)
    dtype = inference_dtype(cls_cfg.half, device, cls_cfg.cpu_precision)  # the same precision as Vigil's
    vit = vit.to(device, dtype).eval()
    kwargs = {"imgsz": det_cfg.imgsz, "conf": det_cfg.confidence, "iou": det_cfg.iou, "max_det": det_cfg.max_det}
    precision = detector_precision(det_cfg, device)  # as Vigil's detector
    quantize = 16 if precision == "fp16" else None
    # bf16 on a CPU as a user writes it: the tracking loop under autocast (the whole model, head too).
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        while not stop.is_set():
            t_ask = time.perf_counter()
            stream = model.track(
                source=str(spec.video),
                stream=True,
                persist=True,
                device=device,
                quantize=quantize,
                verbose=False,
                **kwargs,
            )
            for result in stream:
                with torch.inference_mode(), torch.autocast("cpu", enabled=False):  # the ViT runs as loaded
                    _emb, logits = vit(preprocess([result.orig_img], size).to(device, dtype))
                    torch.softmax(logits.float(), dim=1).cpu().numpy()
                now = time.perf_counter()
                rec.add(camera, now, now - t_ask)
                if stop.is_set():
                    break
                t_ask = time.perf_counter()


def run_threads(spec: ModeSpec, target: Callable[[int, Recorder, threading.Event], None]) -> dict[str, Any]:
    """Start one thread per camera, measure ``spec.seconds`` once every camera has a frame out."""
    rec, stop = Recorder(spec.cameras), threading.Event()

    def guarded(i: int) -> None:
        try:
            target(i, rec, stop)
        except Exception as exc:  # reported to the parent, which prints it as one line
            rec.fail(f"camera {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(spec.cameras)]
    for t in threads:
        t.start()
    report(progress="loading models, first frames")
    rec.all_started.wait()
    if rec.errors:
        raise RuntimeError(rec.errors[0])
    t0 = time.perf_counter()
    report(window="start")
    wait_window(spec.seconds, lambda: rec.window(t0, time.perf_counter())["frames"])
    t1 = time.perf_counter()
    report(window="end")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return rec.window(t0, t1)


def wait_window(seconds: float, frames: Callable[[], int]) -> None:
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        time.sleep(min(0.5, seconds - elapsed))
        report(progress=f"{frames()} frames", fraction=min(1.0, (time.perf_counter() - t0) / seconds))


def run_baseline(spec: ModeSpec) -> dict[str, Any]:
    import torch

    result = run_threads(spec, lambda i, rec, stop: baseline_camera(spec, i, rec, stop))
    result["torch_threads"] = torch.get_num_threads()  # torch's default: one per core, in every thread
    return result


# -- workers: Vigil's batched model workers in-process, no Ray, no Redis --------------------------


def run_workers(spec: ModeSpec) -> dict[str, Any]:
    """Each camera: Vigil's decoder (file mode) -> the shared batched Detector and Classifier
    (called concurrently, as the camera actor does) -> its own tracker. No clip head, no events."""
    from workers.classifier import Classifier
    from workers.decoder import FrameSource
    from workers.detector import Detector
    from workers.tracking import Tracker

    threads = spec.cfg.ray.detector.torch_threads
    det, cls = Detector(spec.cfg.models.detector, threads), Classifier(spec.cfg.models.classifier, threads)
    cams = bench_cameras(spec)

    def camera(i: int, rec: Recorder, stop: threading.Event) -> None:
        source = FrameSource(cams[i], lambda state, reason: None, lambda reason: None)
        tracker = Tracker(frame_rate=cams[i].fps)
        source.start()
        with ThreadPoolExecutor(1) as pool:
            while not stop.is_set():
                packet = source.get(timeout_s=0.5)
                if packet is None:
                    continue
                scene = pool.submit(cls.classify, packet.image_bgr)
                tracker.update(det.detect(packet.image_bgr))
                scene.result()
                rec.add(i, time.perf_counter(), time.time() - packet.captured_at)
        source.stop()

    result = run_threads(spec, camera)
    result["variant"] = "workers (no Ray, no Redis, no clip head)"
    result["batch_mean"] = local_batch_means()
    return result


def local_batch_means() -> dict[str, float]:
    """Mean frames per forward pass of this process's workers (vigil_batch_size), warm-up included."""
    from pipeline.core.metrics import local_families

    sums: dict[str, dict[str, float]] = {}
    for fam in local_families():
        for s in fam.samples if fam.name == "vigil_batch_size" else []:
            if s.name.endswith(("_sum", "_count")):
                sums.setdefault(s.labels["model"], {})[s.name.rsplit("_", 1)[1]] = s.value
    return {m: v["sum"] / v["count"] for m, v in sums.items() if v.get("count")}


# -- vigil: the real pipeline -------------------------------------------------------------------


def run_vigil(spec: ModeSpec) -> dict[str, Any]:
    """The real pipeline on N file cameras; see ``pipeline.bench.vigil``."""
    from pipeline.bench.vigil import measure_pipeline

    cfg = spec.cfg.model_copy(update={"cameras": bench_cameras(spec)})
    return measure_pipeline(cfg, spec.seconds, spec.workdir, report)


MODES: dict[str, Callable[[ModeSpec], dict[str, Any]]] = {
    "limit": run_limit,
    "baseline": run_baseline,
    "workers": run_workers,
    "vigil": run_vigil,
}


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Libraries print to stdout; keep it for the protocol by pointing fd 1 at stderr meanwhile."""
    saved = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    protocol = os.fdopen(saved, "w", buffering=1)
    real, sys.stdout = sys.stdout, protocol
    try:
        yield
    finally:
        sys.stdout = real


def main() -> None:
    mode, spec_path = sys.argv[1], Path(sys.argv[2])
    spec = ModeSpec.from_json(spec_path.read_text())
    with quiet_stdout():
        try:
            result = MODES[mode](spec)
        except Exception as exc:  # the parent turns this into one line on stderr
            report(error=f"{mode}: {type(exc).__name__}: {exc}")
            raise SystemExit(1) from None
        report(result=result)


if __name__ == "__main__":
    main()
