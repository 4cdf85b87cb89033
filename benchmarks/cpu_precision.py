"""The demo pack's accuracy and CPU time at fp32 and bf16 (``cpu_precision``), frame by frame.

Every frame of a ``vigil synth`` set (default: the eval set ``make eval`` renders, seed 1000) is
scaled the way the cameras scale it and goes through ``Detector.detect_batch`` and
``Classifier.classify_batch`` in passes of 16 on one core, for three variants: fp32, bf16 as Vigil
runs it (the detector's box head in fp32), and bf16 everywhere (what wrapping ultralytics in a
bf16 autocast gives). Printed: detection mAP50 / mAP50-95 and scene accuracy, scored as ``vigil
eval`` scores them, and each model's CPU milliseconds per frame; then ultralytics' ``predict``
under a plain autocast at one frame per call and at 16 (a per-camera loop's path)::

    .venv/bin/vigil synth --out .vigil/data/eval --videos 9 --seed 1000   # once (make eval does it)
    .venv/bin/python -m benchmarks.cpu_precision [--data DIR]

bf16 needs a CPU that computes it natively (Intel AMX or AVX512-BF16); elsewhere Vigil runs
fp32 and this says so.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.core.config import ClassifierConfig, DetectorConfig, load_config
from pipeline.ml.evaluate import score_detection, score_scenes
from pipeline.ml.synth.dataset import load_set

REPO = Path(__file__).resolve().parents[1]
PASS = 16

Frames = dict[str, list[tuple[npt.NDArray[np.uint8], float]]]


def scaled_frames(videos: list[tuple[Path, dict[str, Any]]], longest_px: int) -> Frames:
    """Each video's frames as the cameras hand them to the models: (image, scale)."""
    from workers.decoder import model_input

    out: Frames = {}
    for video, _gt in videos:
        cap, frames = cv2.VideoCapture(str(video)), []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(model_input(image, longest_px))
        cap.release()
        out[video.stem] = frames
    return out


@contextmanager
def head_in_bf16(on: bool) -> Iterator[None]:
    """With ``on``, the detector's box head runs bf16 too (Vigil keeps it fp32)."""
    import workers.detector as detector_mod

    keep = detector_mod._head_in_fp32
    if on:
        detector_mod._head_in_fp32 = lambda net: None
    try:
        yield
    finally:
        detector_mod._head_in_fp32 = keep


def run_variant(
    videos: list[tuple[Path, dict[str, Any]]],
    frames: Frames,
    det_cfg: DetectorConfig,
    cls_cfg: ClassifierConfig,
    precision: str,
    bf16_head: bool,
) -> dict[str, Any]:
    from workers.classifier import Classifier
    from workers.detector import Detector

    with head_in_bf16(bf16_head):
        det = Detector(det_cfg.model_copy(update={"cpu_precision": precision}), batching=False, cpu=True)
    cls = Classifier(cls_cfg.model_copy(update={"cpu_precision": precision}), batching=False, cpu=True)
    recorded: dict[str, list[dict[str, Any]]] = {}
    det_s = cls_s = 0.0
    n = 0
    for stem, scaled in frames.items():
        rows = []
        for start in range(0, len(scaled), PASS):
            chunk = scaled[start : start + PASS]
            images = [image for image, _ in chunk]
            t0 = time.thread_time()
            dets = det.detect_batch(images)
            t1 = time.thread_time()
            scenes = cls.classify_batch(images)
            det_s, cls_s = det_s + t1 - t0, cls_s + time.thread_time() - t1
            for i, (d, scene) in enumerate(zip(dets, scenes, strict=True)):
                d = d.scaled(1 / chunk[i][1])
                boxes = np.column_stack([d.xyxy, d.confidence, d.class_id]).round(2).tolist() if len(d) else []
                rows.append({"frame_id": start + i, "boxes": boxes, "scene": scene.label})
            n += len(chunk)
        recorded[stem] = rows
    detection, scenes_scored = score_detection(videos, recorded), score_scenes(videos, recorded)
    return {
        "bf16": det.precision == "bf16",
        "map50": detection["map50"],
        "map50_95": detection["map50_95"],
        "scene_accuracy": scenes_scored["accuracy"],
        "detector_ms_per_frame": det_s / n * 1000,
        "vit_ms_per_frame": cls_s / n * 1000,
        "frames": n,
    }


def autocast_by_call_size(weights: str, imgsz: int, frames: Frames, n: int = 48) -> dict[str, float]:
    """ultralytics' own ``predict`` under a plain bf16 autocast, as a per-camera loop would run it:
    CPU ms per frame at one frame per call and at 16, fp32 and bf16 (the baseline's path)."""
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(weights, task="detect")
    images = [image for scaled in frames.values() for image, _ in scaled][:n]
    out: dict[str, float] = {}
    for per_call in (1, PASS):
        for precision in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                for timed in (False, True):  # a warm-up pass, then the timed one
                    t0 = time.thread_time()
                    for i in range(0, len(images), per_call):
                        model.predict(images[i : i + per_call], imgsz=imgsz, verbose=False)
                    if timed:
                        out[f"{precision}, {per_call} per call"] = (time.thread_time() - t0) / len(images) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".vigil" / "data" / "eval", help="a vigil synth folder")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "bench-cpu.yaml", help="whose models")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from workers.common import configure_torch, native_bf16

    configure_torch(1, cpu=True)
    cfg = load_config(args.config)
    if cfg.models.classifier is None:
        parser.error(f"{args.config}: models.classifier is null, and this benchmark scores the scene ViT too")
    videos = load_set(args.data)
    frames = scaled_frames(videos, cfg.models.input_px)
    print(f"{sum(map(len, frames.values()))} frames of {len(videos)} videos; native bf16: {native_bf16()}")
    results = {}
    for name, precision, bf16_head in (
        ("fp32", "fp32", False),
        ("bf16, box head fp32 (Vigil)", "bf16", False),
        ("bf16 everywhere", "bf16", True),
    ):
        r = results[name] = run_variant(
            videos, frames, cfg.models.detector, cfg.models.classifier, precision, bf16_head
        )
        print(
            f"{name:30s} mAP50 {r['map50']:.4f}  mAP50-95 {r['map50_95']:.4f}  scene {r['scene_accuracy']:.4f}  "
            f"detector {r['detector_ms_per_frame']:.2f} ms/frame  ViT {r['vit_ms_per_frame']:.2f} ms/frame"
            + ("" if r["bf16"] or precision == "fp32" else "  (ran fp32: no native bf16)"),
            flush=True,
        )
    det = cfg.models.detector
    by_call = autocast_by_call_size(det.weights, det.imgsz, frames)
    print(
        "ultralytics predict under a plain autocast, detector ms/frame: "
        + ", ".join(f"{k} {v:.2f}" for k, v in by_call.items())
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"variants": results, "autocast_by_call_size": by_call}, indent=2))


if __name__ == "__main__":
    main()
