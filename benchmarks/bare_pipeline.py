"""The ceiling for a pipeline that also tracks: Vigil's per-frame work with no orchestration at all.

    python -m benchmarks.bare_pipeline [--processes N] [--seconds 25] [--config configs/bench-cpu.yaml]

One process per core (pinned where the OS allows), all at once, each with two "cameras" (threads
decoding the bench video and resizing each frame to model size, as the camera hosts do) and one
loop that takes 8 frames, runs the detector and the ViT on them (one torch thread) and then
ByteTrack and the frame summary for each frame, camera by camera. No Ray, no Redis, no events,
no clip head, no crops (the model calls still update their in-process metrics, as in Vigil).
``vigil bench``'s limit leaves tracking and summaries out; this is what the same machine does
with them, so the distance from here to Vigil is what its orchestration, events and publishing
cost. Prints frames/s per process and in total, and the
CPU per frame of the models and of everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import deque
from typing import Any

BATCH = 8


def _process(config: str, video: str, seconds: float, core: int | None, barrier: Any, out: Any) -> None:
    try:
        out.put(_measure(config, video, seconds, core, barrier))
    except Exception as exc:  # the others must not wait at the barrier for this one
        barrier.abort()
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _measure(config: str, video: str, seconds: float, core: int | None, barrier: Any) -> dict[str, Any]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if core is not None:
        os.sched_setaffinity(0, {core})
    import cv2

    from pipeline.bench_modes import BARRIER_TIMEOUT_S
    from pipeline.config import load_config
    from workers.classifier import Classifier
    from workers.common import tune_allocator
    from workers.decoder import model_input
    from workers.detector import Detector
    from workers.temporal import FrameSummarizer
    from workers.tracking import Tracker

    tune_allocator()
    cv2.setNumThreads(1)
    cfg = load_config(config)
    det, cls = Detector(cfg.models.detector, 1), Classifier(cfg.models.classifier, 1)
    px = cfg.models.input_px
    ready: deque[tuple[int, Any, float, tuple[int, int], float]] = deque()
    room = threading.Semaphore(2 * BATCH)  # frames decoded ahead, as the cameras' queues allow
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
        for _ in range(BATCH):
            have.acquire()
            items.append(ready.popleft())
            room.release()
        c0 = time.thread_time()
        images = [it[1] for it in items]
        found, _scenes = det.detect_batch(images), cls.classify_batch(images)
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
        frames, models_s, after_s = frames + BATCH, models_s + m, after_s + a
    wall, cpu = time.perf_counter() - t0, time.process_time() - p0
    stop.set()
    return {
        "core": core,
        "fps": frames / wall,
        "models_ms": 1000 * models_s / frames,
        "track_and_summary_ms": 1000 * after_s / frames,
        "other_ms": 1000 * (cpu - models_s - after_s) / frames,  # decoding, resizing, threads
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    parser.add_argument("--processes", type=int, default=len(cores) or os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--config", default="configs/bench-cpu.yaml")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    from pipeline.bench import default_video
    from pipeline.bench_modes import run_on_cores

    video = str(default_video())  # rendered once, here, before the processes read it
    on = [cores[i % len(cores)] if cores else None for i in range(args.processes)]
    try:
        results = run_on_cores("bare_pipeline", _process, (args.config, video, args.seconds), on)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    for r in results:
        print(
            f"core {r['core']}: {r['fps']:.1f} fps; per frame: models {r['models_ms']:.2f} ms, tracking and "
            f"summary {r['track_and_summary_ms']:.2f} ms, decoding/resizing/threads {r['other_ms']:.2f} ms"
        )
    total = sum(r["fps"] for r in results)
    print(f"total: {total:.1f} fps on {args.processes} processes at once")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"fps": total, "processes": results}, fh, indent=2)


if __name__ == "__main__":
    main()
