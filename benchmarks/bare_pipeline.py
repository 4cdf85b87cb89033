"""The ceiling for a pipeline that also tracks: Vigil's per-frame work with no orchestration at all.

    python -m benchmarks.bare_pipeline [--processes N] [--seconds 25] [--config configs/bench-cpu.yaml]
                                       [--batch N] [--beside-ray --rounds 3]

One process per core (pinned where the OS allows), all at once, each with two "cameras" (threads
decoding the bench video and resizing each frame to model size, as the camera hosts do) and one
loop that takes a batch of frames (the config's ``models.detector.max_batch``, or ``--batch``),
runs the detector and the ViT on them (one torch thread) and then ByteTrack and the frame summary
for each frame, camera by camera. No Ray, no Redis, no events, no clip head, no crops (the model
calls still update their in-process metrics, as in Vigil). ``vigil bench``'s limit leaves tracking
and summaries out; this is what the same machine does with them, so the distance from here to
Vigil is what its orchestration, events and publishing cost. Prints frames/s per process and in
total, and the CPU per frame of the models and of everything else.

``--beside-ray``: the same measurement, alternated round by round, with and without an idle local
Ray started beside it the way Vigil starts one (``pipeline.runtime.driver.init_ray`` on the config: its
raylet, GCS, agents, one idle actor per process as the camera hosts are, and this driver asking
each actor for a status four times a second as ``vigil bench``'s driver does). None of the frames
go through Ray: the difference is what Ray's presence alone costs a machine whose cores are busy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STATUS_POLL_S = 0.25  # vigil bench's driver samples the camera statuses this often


def _process(config: str, video: str, seconds: float, batch: int, core: int | None, barrier: Any, out: Any) -> None:
    try:
        out.put(_measure(config, video, seconds, batch, core, barrier))
    except Exception as exc:  # the others must not wait at the barrier for this one
        barrier.abort()
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _measure(
    config: str, video: str, seconds: float, batch_size: int, core: int | None, barrier: Any
) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if core is not None:
        os.sched_setaffinity(0, {core})
    import cv2

    from pipeline.bench.cores import BARRIER_TIMEOUT_S
    from pipeline.core.config import load_config
    from workers.classifier import Classifier
    from workers.clip_head import FrameSummarizer
    from workers.common import tune_allocator
    from workers.decoder import model_input
    from workers.detector import Detector
    from workers.tracking import Tracker

    tune_allocator()
    cv2.setNumThreads(1)
    cfg = load_config(config)
    det = Detector(cfg.models.detector, 1)
    cls = Classifier(cfg.models.classifier, 1) if cfg.models.classifier is not None else None  # null: no ViT
    px = cfg.models.input_px
    ready: deque[tuple[int, Any, float, tuple[int, int], float]] = deque()
    room = threading.Semaphore(2 * batch_size)  # frames decoded ahead, as the cameras' queues allow
    have = threading.Semaphore(0)
    stop = threading.Event()

    def camera(k: int) -> None:
        cap, ts = None, 0.0
        while not stop.is_set():
            if not room.acquire(timeout=0.5):
                continue
            ok, image = (False, None) if cap is None else cap.read()
            if not ok:  # loop the file
                if cap is not None:
                    cap.release()
                cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
                ok, image = cap.read()
            small, scale = model_input(image, px)
            ts += 0.1
            ready.append((k, small, scale, (image.shape[1], image.shape[0]), ts))
            have.release()

    cameras = [threading.Thread(target=camera, args=(k,), daemon=True) for k in range(2)]
    for t in cameras:
        t.start()
    trackers = [Tracker(10.0) for _ in cameras]
    summaries = [FrameSummarizer(det.class_names) for _ in cameras]

    def batch() -> tuple[float, float]:
        items = []
        for _ in range(batch_size):
            have.acquire()
            items.append(ready.popleft())
            room.release()
        c0 = time.thread_time()
        images = [it[1] for it in items]
        found = det.detect_batch(images)
        if cls is not None:
            cls.classify_batch(images)
        c1 = time.thread_time()
        for (k, _small, scale, wh, ts), d in zip(items, found, strict=True):
            d = d.scaled(1 / scale)
            trackers[k].update(d)
            summaries[k](d, wh, ts)
        return c1 - c0, time.thread_time() - c1

    for _ in range(2):  # warm-up
        batch()
    barrier.wait(BARRIER_TIMEOUT_S)
    t0, p0, frames, models_s, after_s = time.perf_counter(), time.process_time(), 0, 0.0, 0.0
    while time.perf_counter() - t0 < seconds:
        m, a = batch()
        frames, models_s, after_s = frames + batch_size, models_s + m, after_s + a
    wall, cpu = time.perf_counter() - t0, time.process_time() - p0
    stop.set()
    return {
        "core": core,
        "fps": frames / wall,
        "models_ms": 1000 * models_s / frames,
        "track_and_summary_ms": 1000 * after_s / frames,
        "other_ms": 1000 * (cpu - models_s - after_s) / frames,  # decoding, resizing, threads
    }


@contextmanager
def idle_ray(config: str, actors: int) -> Iterator[None]:
    """A local Ray started as Vigil starts it, with ``actors`` idle actors that this process asks
    for a status every ``STATUS_POLL_S``; shut down on exit."""
    import ray

    from pipeline.core.config import load_config
    from pipeline.runtime.driver import init_ray

    @ray.remote(num_cpus=0)
    class Idle:
        def status(self) -> dict[str, Any]:
            return {}

    init_ray(load_config(config), log_to_driver=False)
    stop = threading.Event()
    poller: threading.Thread | None = None
    try:
        handles = [Idle.remote() for _ in range(actors)]
        ray.get([h.status.remote() for h in handles])

        def poll() -> None:
            while not stop.wait(STATUS_POLL_S):
                ray.get([h.status.remote() for h in handles])

        poller = threading.Thread(target=poll, name="status-poll", daemon=True)
        poller.start()
        yield
    finally:  # the poller ends before Ray does, also when the measurement failed
        stop.set()
        if poller is not None:
            poller.join()
        ray.shutdown()


def _report(label: str, results: list[dict[str, Any]]) -> float:
    for r in sorted(results, key=lambda r: r["core"] if r["core"] is not None else -1):
        print(
            f"{label}core {r['core']}: {r['fps']:.1f} fps; per frame: models {r['models_ms']:.2f} ms, tracking and "
            f"summary {r['track_and_summary_ms']:.2f} ms, decoding/resizing/threads {r['other_ms']:.2f} ms"
        )
    total = float(sum(r["fps"] for r in results))
    print(f"{label}total: {total:.1f} fps on {len(results)} processes at once", flush=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    parser.add_argument("--processes", type=int, default=len(cores) or os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--config", default="configs/bench-cpu.yaml")
    parser.add_argument(
        "--batch", type=int, default=None, help="frames per model pass (default: the config's detector max_batch)"
    )
    parser.add_argument("--beside-ray", action="store_true", help="alternate runs with and without an idle Ray beside")
    parser.add_argument("--rounds", type=int, default=1, help="with --beside-ray: how many of each")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    from pipeline.bench.cores import run_on_cores
    from pipeline.bench.spec import default_video
    from pipeline.core.config import load_config

    batch = args.batch or load_config(args.config).models.detector.max_batch
    video = str(default_video())  # rendered once, here, before the processes read it
    on = [cores[i % len(cores)] if cores else None for i in range(args.processes)]

    def measure() -> list[dict[str, Any]]:
        try:
            return run_on_cores("bare_pipeline", _process, (args.config, video, args.seconds, batch), on)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None

    print(f"passes of {batch} frames, {args.processes} processes", flush=True)
    if not args.beside_ray:
        results = measure()
        total = _report("", results)
        out: dict[str, Any] = {"fps": total, "batch": batch, "processes": results}
    else:
        runs: dict[str, list[float]] = {"alone": [], "beside_ray": []}
        for k in range(max(1, args.rounds)):
            runs["alone"].append(_report(f"round {k + 1}, alone: ", measure()))
            with idle_ray(args.config, args.processes):
                runs["beside_ray"].append(_report(f"round {k + 1}, beside an idle Ray: ", measure()))
        alone, beside = statistics.median(runs["alone"]), statistics.median(runs["beside_ray"])
        print(f"median: {alone:.1f} fps alone, {beside:.1f} beside an idle Ray ({beside / alone:.3f}x)")
        out = {
            "batch": batch,
            "fps_alone": runs["alone"],
            "fps_beside_ray": runs["beside_ray"],
            "ratio": beside / alone,
        }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
