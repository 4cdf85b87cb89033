"""Does this machine scale the detector's forward pass to all its cores? ``vigil bench``'s limit
assumes it does (cores / single-threaded CPU per frame); on a VM whose vCPUs are hyperthreads of
one core, or share a cache, it would not, and no pipeline could reach that limit.

    python -m benchmarks.core_scaling [--processes 2] [--seconds 20] [--weights models/demo/detector.pt]

Runs the detector (one torch thread, batch 8, model-size frames of the bench video) in one
process alone, then in ``--processes`` processes at once, and prints each one's CPU ms per frame.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time


def run(weights: str, imgsz: int, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import cv2

    from pipeline.bench.spec import default_video
    from pipeline.core.config import DetectorConfig
    from workers.decoder import model_input
    from workers.detector import Detector

    det = Detector(DetectorConfig(weights=weights, imgsz=imgsz), 1, batching=False)
    cap = cv2.VideoCapture(str(default_video()))
    frames = []
    while len(frames) < 64:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(model_input(image, imgsz)[0])
    cap.release()
    batches = [frames[i : i + 8] for i in range(0, len(frames) - 7, 8)]
    for batch in batches[:3]:
        det.detect_batch(batch)
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - t0 < seconds:
        det.detect_batch(batches[n % len(batches)])
        n += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.put({"fps": 8 * n / wall, "cpu_ms_per_frame": 1000 * cpu / (8 * n)})


def measure(processes: int, weights: str, imgsz: int, seconds: float) -> list[dict[str, float]]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=run, args=(weights, imgsz, seconds, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--weights", default="models/demo/detector.pt")
    parser.add_argument("--imgsz", type=int, default=320)
    args = parser.parse_args()
    alone = measure(1, args.weights, args.imgsz, args.seconds)[0]
    print(f"1 process alone: {alone['fps']:.1f} fps, {alone['cpu_ms_per_frame']:.2f} CPU ms/frame")
    together = measure(args.processes, args.weights, args.imgsz, args.seconds)
    for i, r in enumerate(together):
        print(
            f"{args.processes} at once, #{i + 1}: {r['fps']:.1f} fps, {r['cpu_ms_per_frame']:.2f} CPU ms/frame "
            f"({r['cpu_ms_per_frame'] / alone['cpu_ms_per_frame']:.2f}x alone)"
        )
    print(
        f"total {sum(r['fps'] for r in together):.1f} fps = {sum(r['fps'] for r in together) / alone['fps']:.2f}x one"
    )


if __name__ == "__main__":
    main()
