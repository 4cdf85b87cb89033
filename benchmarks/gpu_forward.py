"""GPU side of `vigil bench`'s models: pure forward passes on tensors already on the GPU (fp32 and
fp16, several batch sizes) next to the CPU preprocessing the workers do per 1080p frame.

    python -m benchmarks.gpu_forward --video PATH    # a 1080p video: preprocessing is timed on its first frame

Prints a Markdown table (docs/performance.md, GPU). CUDA events time the forward passes (median of 20
after 5 warm-ups); preprocessing is timed on the CPU, single-threaded as in the workers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import torch

from pipeline.core.config import DetectorConfig, TimmViT
from workers.classifier import build_model, preprocess


def gpu_ms(fn: object, reps: int = 20) -> float:
    """Median milliseconds of ``fn()`` on the GPU (CUDA events)."""
    for _ in range(5):
        fn()  # type: ignore[operator]
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()  # type: ignore[operator]
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def cpu_ms(fn: object, reps: int = 30) -> float:
    fn()  # type: ignore[operator]
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()  # type: ignore[operator]
    return 1000 * (time.perf_counter() - t0) / reps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--video", type=Path, required=True)
    args = parser.parse_args()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    dev = "cuda:0"
    det_cfg = DetectorConfig(imgsz=640)
    yolo = YOLO(det_cfg.weights, task="detect").model.to(dev).eval().fuse()
    vit = build_model(TimmViT(arch="vit_small_patch16_224"), ("a", "b", "c"), 224).to(dev).eval()
    ok, frame = cv2.VideoCapture(str(args.video), cv2.CAP_FFMPEG).read()
    assert ok, args.video
    h, w = frame.shape[:2]
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((640, 640), auto=False)
    vit_pre, yolo_pre = cpu_ms(lambda: preprocess([frame], 224)), cpu_ms(lambda: letterbox(image=frame))
    print(f"frame {w}x{h}; CPU preprocessing, 1 thread: ViT {vit_pre:.2f} ms, YOLO letterbox {yolo_pre:.2f} ms")
    print("| model | dtype | batch | ms per batch | frames/s |")
    print("|---|---|---|---|---|")
    with torch.inference_mode():
        for name, model, size in (("yolo11n @640", yolo, 640), ("ViT-S/16 @224", vit, 224)):
            for dtype in (torch.float32, torch.float16):
                m = model.to(dtype)
                for b in (1, 8, 32, 64, 128):
                    x = torch.rand(b, 3, size, size, device=dev, dtype=dtype)
                    ms = gpu_ms(lambda m=m, x=x: m(x))
                    print(f"| {name} | {str(dtype).split('.')[1]} | {b} | {ms:.2f} | {1000 * b / ms:.0f} |")


if __name__ == "__main__":
    main()
