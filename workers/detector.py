"""Detect stage: ultralytics YOLO behind Vigil's ``Detections`` type.

``Detector`` is a plain class; the driver turns it into a Ray actor (GPU when the cluster has
one). It is stateless across frames: tracking lives with each camera (``workers.tracking``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.core.config import DetectorConfig
from pipeline.core.messages import Detections
from pipeline.core.metrics import MODEL_LOAD_SECONDS, model_call
from workers.batching import Batcher
from workers.common import (
    MetricsExporter,
    configure_torch,
    precision_on,
    release_free_memory,
    set_process_role,
    use_half,
    warn_once,
)

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """Weights that do not load as the model their config key asks for; the message names the key."""


_DECORATION = re.compile(r"\x1b\[[0-9;]*m|[❌️✅⚠]")  # terminal colours and ultralytics' emoji


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (ultralytics adds advice lines), without its ERROR marker,
    colours or emoji."""
    text = _DECORATION.sub("", str(exc)).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].removeprefix("ERROR").split())


def results_to_detections(result: Any, class_names: tuple[str, ...]) -> Detections:
    """Adapter: one ultralytics ``Results`` -> ``Detections`` (untracked)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return Detections.empty(class_names)
    return Detections(
        xyxy=boxes.xyxy.cpu().numpy().astype(np.float32),
        confidence=boxes.conf.cpu().numpy().astype(np.float32),
        class_id=boxes.cls.cpu().numpy().astype(np.int64),
        tracker_id=np.full(len(boxes), -1, np.int64),
        class_names=class_names,
    )


def export_path(cfg: DetectorConfig, device: str) -> Path:
    """Where ``export_detector`` puts (and finds) the export of ``cfg`` on ``device``: the name holds
    the weights' content hash, the input size, the batch cap, the precision and the device kind."""
    source = Path(cfg.weights)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12] if source.is_file() else source.stem
    precision = "fp16" if use_half(cfg.half, device) else "fp32"
    kind = "cuda" if device != "cpu" else "cpu"
    return cfg.export_dir / f"{source.stem}-{digest}-{cfg.imgsz}-b{cfg.max_batch}-{precision}-{kind}.{cfg.export}"


def export_detector(cfg: DetectorConfig, device: str) -> Path:
    """Export ``cfg.weights`` with ultralytics (``cfg.export`` format) once, into ``cfg.export_dir``.

    The file name holds everything the export depends on (the weights' content, size, batch, fp16,
    device kind), so a changed model or config never reuses a stale export. Replicas starting
    together take turns through a lock file: one exports, the others load its result.
    """
    from ultralytics import YOLO  # type: ignore[attr-defined]

    if cfg.export == "engine" and device == "cpu":
        raise ModelLoadError("models.detector.export: engine (TensorRT) needs an NVIDIA GPU; use onnx on a CPU")
    source = Path(cfg.weights)
    half = use_half(cfg.half, device)
    target = export_path(cfg, device)
    name = target.name
    cfg.export_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.export_dir / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        log.info("exporting %s to %s (once; cached in %s)", cfg.weights, cfg.export, cfg.export_dir)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=cfg.export_dir) as tmp:
            # ultralytics writes the export beside its input: stage a checkpoint in the cache directory.
            staged = Path(tmp) / f"{source.stem}.pt"
            if source.suffix == ".pt" and source.is_file():
                shutil.copy(source, staged)
            else:  # an architecture yaml: build it and save it as a checkpoint
                YOLO(cfg.weights, task="detect").save(staged)
            out = YOLO(str(staged), task="detect").export(
                format=cfg.export,
                imgsz=cfg.imgsz,
                batch=cfg.max_batch,
                dynamic=True,  # any batch size up to max_batch
                half=half,
                simplify=importlib.util.find_spec("onnxslim") is not None,
                device=device,
                verbose=False,
            )
            Path(out).replace(target)
        log.info("exported %s in %.0f s", target, time.perf_counter() - t0)
        return target


def _head_in_fp32(net: Any) -> None:
    """Run the detection head of an ultralytics model in fp32 under a bf16 autocast: the backbone
    and neck (most of the work) stay bf16, the boxes do not lose ~3 px at imgsz 320 (more at larger
    sizes) to bf16's 8-bit mantissa. On the demo pack at imgsz 320, mAP50-95: fp32 0.7382, bf16 with
    this 0.7377, bf16 everywhere 0.6892 (``benchmarks/cpu_precision.py``)."""
    import torch

    head = net.model[-1]
    forward = head.forward

    def fp32_forward(x: list[torch.Tensor]) -> Any:
        with torch.autocast("cpu", enabled=False):
            return forward([t.float() for t in x])

    head.forward = fp32_forward


def detector_precision(cfg: DetectorConfig, device: str) -> str:
    """What the detector computes in on ``device`` (fp16 / bf16 / fp32): ``precision_on``'s rule,
    except that bf16 applies to PyTorch weights only; an export runs as exported (fp32 on a CPU)."""
    precision = precision_on(cfg.half, cfg.cpu_precision, device, "detector")
    if precision == "bf16" and cfg.export is not None:
        if cfg.cpu_precision == "bf16":  # asked for outright: say it does not apply ("auto" asks nothing)
            warn_once(
                f"bf16 export: {cfg.export}",
                "detector: cpu_precision bf16 applies to PyTorch weights, not export: %s: fp32",
                cfg.export,
            )
        return "fp32"
    return precision


def _onnx_on_threads(model: Any, path: Path, threads: int) -> int | None:
    """Give ultralytics' ONNX Runtime session on a CPU the worker's ``threads`` intra-op threads,
    sleeping when idle; returns the count, or None where the session could not be found.

    ultralytics opens the session with ONNX Runtime's defaults: a thread per core, spinning while
    they wait for work, which burns CPU well beyond the forward passes themselves (docs/performance.md).
    In a camera host, which keeps to one core, or beside other workers, that takes the CPU the rest
    of the pipeline needs. ``torch_threads`` (``ray.detector.torch_threads``; one in the hosts)
    sizes the session as it sizes torch."""
    import onnxruntime as ort

    predictor = getattr(model, "predictor", None)
    backend = getattr(getattr(predictor, "model", None), "backend", None)
    if backend is None or not hasattr(backend, "session"):  # another ultralytics layout
        log.warning("detector: ONNX Runtime session not found; it runs with ONNX Runtime's default threads")
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    backend.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return threads


class Detector(MetricsExporter):
    """Runs YOLO on frames. ``weights``: a name, a local .pt path, or an architecture .yaml."""

    def __init__(self, cfg: DetectorConfig, torch_threads: int = 1, batching: bool = True, cpu: bool = False) -> None:
        """``batching=False``: no batcher of its own (``detect`` unusable); a ``VisionWorker`` batches.
        ``cpu``: stay on the CPU even where a GPU is visible (``ray.placement: hosts``)."""
        set_process_role("detector")
        from ultralytics import YOLO  # type: ignore[attr-defined]

        self.cfg = cfg
        self.device = configure_torch(torch_threads, cpu)
        t0 = time.perf_counter()
        try:
            exported = export_detector(cfg, self.device) if cfg.export else None
            self.model = YOLO(str(exported) if exported else cfg.weights, task="detect")
        except ModelLoadError:
            raise
        except Exception as exc:  # a missing, corrupt or foreign file: one line naming the key path
            why = first_line(exc)
            if "download" in why.lower():
                why += (
                    "; without internet, fetch the weights on a machine that has it and set "
                    "models.detector.weights to their path (docs/models.md)"
                )
            raise ModelLoadError(f"models.detector.weights: cannot load {cfg.weights}: {why}") from exc
        names = self.model.names
        self.class_names = tuple(str(names[i]) for i in sorted(names))
        self.precision = detector_precision(cfg, self.device)
        # The first call builds the fused model; do it now so the first frame is not an outlier.
        self._predict([np.zeros((cfg.imgsz, cfg.imgsz, 3), np.uint8)])
        self.runtime_threads: int | None = None  # ONNX Runtime's intra-op threads, where Vigil set them
        if cfg.export == "onnx" and self.device == "cpu":
            assert exported is not None
            self.runtime_threads = _onnx_on_threads(self.model, exported, torch_threads)
            self._predict([np.zeros((cfg.imgsz, cfg.imgsz, 3), np.uint8)])  # the new session's first call
        if self.precision == "bf16":
            assert self.model.predictor is not None  # made by the first call
            _head_in_fp32(self.model.predictor.model.model)
            self._predict([np.zeros((cfg.imgsz, cfg.imgsz, 3), np.uint8)])  # the fp32 head's first call
        MODEL_LOAD_SECONDS.labels("detector").observe(time.perf_counter() - t0)
        release_free_memory()  # the checkpoint's copies, freed as loading ended
        if batching:
            self._batcher = Batcher(self.detect_batch, cfg.max_batch, cfg.max_wait_ms / 1000, name="detector-batcher")
        log.info(
            "detector %s loaded on %s (%s, %d classes)", cfg.weights, self.device, self.precision, len(self.class_names)
        )

    def names(self) -> tuple[str, ...]:
        """Class names by class id."""
        return self.class_names

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        """One frame; concurrent calls (from all cameras) are batched into one forward pass."""
        return self._batcher.submit(image_bgr)

    def detect_batch(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[Detections]:
        """One forward pass over a batch of BGR frames (any sizes; ultralytics letterboxes)."""
        with model_call("detector", len(images_bgr)):
            return self._predict(images_bgr)

    def _predict(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[Detections]:
        if self.precision == "bf16":  # autocast is per thread: whichever thread calls gets it
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self._predict_as_is(images_bgr)
        return self._predict_as_is(images_bgr)

    def _predict_as_is(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[Detections]:
        results = self.model.predict(
            images_bgr,
            imgsz=self.cfg.imgsz,
            conf=self.cfg.confidence,
            iou=self.cfg.iou,
            max_det=self.cfg.max_det,
            device=self.device,
            quantize=16 if self.precision == "fp16" else None,
            verbose=False,
        )
        return [results_to_detections(r, self.class_names) for r in results]
