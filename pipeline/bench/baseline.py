"""``vigil bench``'s baseline mode: what a user would write without Vigil, one thread per camera, each
with its own YOLO running ``model.track(stream=True)`` and the same ViT on every frame (the
ultralytics multi-stream threading pattern; no ViT where the config has none)."""

from __future__ import annotations

import threading
import time
from typing import Any

from pipeline.bench.spec import ModeSpec
from pipeline.bench.threads import Recorder, run_threads


def baseline_camera(spec: ModeSpec, camera: int, rec: Recorder, stop: threading.Event) -> None:
    """What a user writes from the ultralytics threading docs: its own YOLO per thread, tracking a
    stream, and the ViT on every frame (where the config has one). Latency: from asking for the frame
    to the ViT's output (the detector's without a ViT)."""
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    from workers.classifier import SceneViT, inference_dtype, load_model, preprocess
    from workers.detector import detector_precision, export_detector

    det_cfg, cls_cfg = spec.cfg.models.detector, spec.cfg.models.classifier
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    # The same model file as Vigil's detector: an export where the config asks for one (made by the
    # limit run; ultralytics then runs it with its defaults, as a user's YOLO("model.onnx") does).
    model = YOLO(str(export_detector(det_cfg, device)) if det_cfg.export else det_cfg.weights, task="detect")
    vit: SceneViT | None = None
    size, dtype = 0, torch.float32
    if cls_cfg is not None:  # models.classifier: null: the loop runs the detector alone, as Vigil does
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
                if vit is not None:
                    with torch.inference_mode(), torch.autocast("cpu", enabled=False):  # the ViT runs as loaded
                        _emb, logits = vit(preprocess([result.orig_img], size).to(device, dtype))
                        torch.softmax(logits.float(), dim=1).cpu().numpy()
                now = time.perf_counter()
                rec.add(camera, now, now - t_ask)
                if stop.is_set():
                    break
                t_ask = time.perf_counter()


def run_baseline(spec: ModeSpec) -> dict[str, Any]:
    import torch

    result = run_threads(spec, lambda i, rec, stop: baseline_camera(spec, i, rec, stop))
    result["torch_threads"] = torch.get_num_threads()  # torch's default: one per core, in every thread
    return result
