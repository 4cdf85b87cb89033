"""``vigil bench``'s limit mode: the compute alone. The detector's and the ViT's batch calls on
pre-decoded frames at each batch size, and decoding alone, from which the frames/s a perfectly
pipelined machine would reach (``run_limit`` says how, on a CPU box and on a GPU one). Without a
ViT (``models.classifier: null``) the tables and the formulas hold the detector alone."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.bench.cores import BARRIER_TIMEOUT_S, run_on_cores, usable_cores
from pipeline.bench.protocol import report
from pipeline.bench.spec import ModeSpec

Frame = npt.NDArray[np.uint8]
MAX_LIMIT_PROCESSES = 8  # each loads the models: on a big box 8 busy cores say what all of them would
CLOCKS = ("cpu_ms_per_frame", "wall_ms_per_frame")


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
    on the decoded frames (the models on what a user's loop would feed them); these say what the
    same calls cost on what the pipeline feeds them, which the bench needs to tell the machine's
    speed during the Vigil run from what the smaller frames save
    (``pipeline.bench.overhead.model_speed``)."""
    from workers.classifier import Classifier
    from workers.common import tune_allocator
    from workers.decoder import model_input
    from workers.detector import Detector

    tune_allocator()  # as in Vigil's processes, before decoding: the limit is the best these models do here
    per_size = max(1.0, spec.seconds / (4 * len(spec.batch_sizes)))
    sync()
    frames, decode = decode_frames(spec.video, keep=max(spec.batch_sizes), min_s=min(5.0, spec.seconds / 4))
    det = Detector(spec.cfg.models.detector, torch_threads=1)
    cls_cfg = spec.cfg.models.classifier
    cls = Classifier(cls_cfg, torch_threads=1) if cls_cfg is not None else None
    px = spec.cfg.models.input_px
    inputs = {"decoded": frames}
    out: dict[str, Any] = {"device": det.device, "decode": decode}
    if model_inputs and det.device == "cpu":
        inputs["model_input"] = [model_input(f, px)[0] for f in frames]
        out["resize"] = {"longest_px": px, **time_resize(frames, px)}
    sync()
    det_t = time_batches(det.detect_batch, inputs, spec.batch_sizes, per_size, progress=progress)
    out["detector"] = det_t["decoded"]
    if "model_input" in inputs:
        out["detector_model_input"] = det_t["model_input"]
    sync()  # every process reaches each sync, with a ViT or without
    if cls is not None:
        cls_t = time_batches(cls.classify_batch, inputs, spec.batch_sizes, per_size, progress=progress)
        out["vit"] = cls_t["decoded"]
        if "model_input" in inputs:
            out["vit_model_input"] = cls_t["model_input"]
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


def measure_on_every_core(spec: ModeSpec, cores: int) -> dict[str, Any]:
    """``measure_compute`` in one process per core (up to ``MAX_LIMIT_PROCESSES``), all at once,
    each phase started together: the models' CPU and wall time per frame when every core is busy
    (cores share caches, memory bandwidth and, on a VM, the host, so each may run slower than while
    the others idle; docs/performance.md). Averaged over the processes."""
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
    tables = ("detector", "vit", "detector_model_input", "vit_model_input")  # those the processes measured
    out = {
        "device": outs[0]["device"],
        "processes": n,
        "decode": decode,  # fps: all the processes together
        **{table: mean_table(table) for table in tables if table in outs[0]},
    }
    if "resize" in outs[0]:
        out["resize"] = {
            "longest_px": outs[0]["resize"]["longest_px"],
            **{k: statistics.fmean(o["resize"][k] for o in outs) for k in CLOCKS},
        }
    return out


def models_ms(m: dict[str, Any], tables: tuple[str, str], key: str, digits: int = 1) -> tuple[float, str, str, str]:
    """The detector's and the ViT's ``key`` per frame at their best batches, summed, from the
    ``tables`` of ``m`` (the detector's, the ViT's), and for a formula: what is summed, the figures
    and the batches. Without the ViT's table (``models.classifier: null``) the detector's alone."""
    db, dc = best(m[tables[0]], key)
    if tables[1] not in m:
        return dc, "detector", f"{dc:.{digits}f}", f"detector batch {db}"
    cb, cc = best(m[tables[1]], key)
    return dc + cc, "detector + ViT", f"{dc:.{digits}f} + {cc:.{digits}f}", f"detector batch {db}, ViT batch {cb}"


def cpu_limit(m: dict[str, Any], cores: int, how: str, clock: str = "wall") -> tuple[float, str]:
    """Frames/s of a CPU box from one measurement: cores / (detector + ViT + decode time per frame).

    ``clock="wall"`` (the limit): each stage's wall time per frame in a process that had a core to
    itself, so the limit pays what the machine takes from every core while all of them are busy
    (the kernel, the VM's own threads, other services), as Vigil's frames per wall second do.
    ``"cpu"``: its CPU time per frame instead, the bound only a machine that took nothing from its
    cores would reach."""
    key = f"{clock}_ms_per_frame"
    ms, names, figures, batches = models_ms(m, ("detector", "vit"), key)
    fps = 1000 * cores / (ms + m["decode"][key])
    return fps, (
        f"cores / ({names} + decode {clock} time per frame) = {cores} / ({figures} + "
        f"{m['decode'][key]:.1f} ms) ({batches}, single-threaded, {how})"
    )


def cpu_limit_on_model_inputs(m: dict[str, Any], cores: int) -> dict[str, Any] | None:
    """The same bound with the models fed what Vigil's cameras feed them: cores / (detector + ViT
    on model-size frames + decode + the scaling), wall time per frame, or None where ``m`` has no
    such tables."""
    if "resize" not in m:
        return None
    key = "wall_ms_per_frame"
    ms, names, figures, batches = models_ms(m, ("detector_model_input", "vit_model_input"), key)
    dec, rs = m["decode"][key], m["resize"][key]
    return {
        "fps": 1000 * cores / (ms + dec + rs),
        "formula": f"cores / ({names} on frames scaled to {m['resize']['longest_px']} px + decode + scaling) "
        f"= {cores} / ({figures} + {dec:.1f} + {rs:.2f} ms) ({batches}, wall time per frame)",
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
    else:
        ms, names, figures, batches = models_ms(out, ("detector", "vit"), "wall_ms_per_frame", digits=2)
        model_fps, decode_fps = 1000 / ms, 1000 * cores / out["decode"]["cpu_ms_per_frame"]
        out["fps"] = min(model_fps, decode_fps)
        out["formula"] = (
            f"min(1 / ({names} per frame), cores / decode CPU per frame) = min(1000 / ({figures} ms), "
            f"{cores} x 1000 / {out['decode']['cpu_ms_per_frame']:.2f} ms) = min({model_fps:.0f}, "
            f"{decode_fps:.0f}) ({batches}; the workers' batch calls, their CPU preprocessing included)"
        )
    report(window="end")
    out["best_batch"] = {m: best(out[m], "wall_ms_per_frame")[0] for m in ("detector", "vit") if m in out}
    return out
