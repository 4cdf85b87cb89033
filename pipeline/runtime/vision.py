"""Detect + classify on one batch: in one actor (``ray.placement: fused``) or in the camera hosts
(``ray.placement: hosts``).

With separate workers every frame costs two actor calls, two deserialisations of the frame, two
batcher hand-offs and two result fetches, and each model holds its own process. Where cores are
few (a CPU box) or the classifier is cheap next to the detector, that overhead is a sizeable part
of the CPU (docs/performance.md). ``VisionWorker`` runs both models on the same batch in one process:
one call per frame, one copy of the frame, one batch. Its replicas (``ray.detector``) scale both
models together; keep separate workers where the two need different resources (a big ViT that
wants its own GPU, say).

``HostModels`` goes one step further for CPU-only machines: the models live in each camera-host
process and take its cameras' frames without a Ray call at all. The cores the models use are the
cores the cameras use anyway; what is saved is Ray's dispatch on both sides of every call (on a
small CPU box as much CPU as a slice of the model; docs/performance.md) and the frames'
serialisation. What is given up: a model worker that any camera can use (batches only mix the
cameras of one host) and GPU placement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from pipeline.core.config import ClassifierConfig, CropClassifierConfig, DetectorConfig, ZeroShotConfig
from pipeline.core.messages import Detections, LabelScore, SceneResult
from pipeline.core.metrics import StepClock
from workers.batching import Batcher
from workers.common import MetricsExporter, set_process_role
from workers.detector import Detector
from workers.zero_shot import ZeroShotCropClassifier, ZeroShotSceneClassifier, classifier_class

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Out = TypeVar("Out")


def vision_max_batch(det_cfg: DetectorConfig, cls_cfg: ClassifierConfig | None) -> int:
    """Frames per batch where both models run on it: the larger ``max_batch`` (on a CPU the
    detector's best batch is often smaller than the ViT's; each model splits the batch into passes
    of its own size). Without a ViT (``models.classifier: null``), the detector's."""
    return max(det_cfg.max_batch, cls_cfg.max_batch if cls_cfg is not None else 0)


def _in_passes(fn: Callable[[list[Item]], list[Out]], items: list[Item], step: int) -> list[Out]:
    """``fn`` over ``items`` in calls of at most ``step`` items; the results in order."""
    return [out for i in range(0, len(items), step) for out in fn(items[i : i + step])]


VisionCfgs = tuple[DetectorConfig, ClassifierConfig | None]  # the classifier's None: models.classifier is off
VisionOut = tuple[Detections, SceneResult | None]  # a frame's detections and scene (None: no scene ViT)


class VisionModels:
    """The detector and the scene classifier (where configured), run one after the other on the same batch."""

    def __init__(self, cfgs: VisionCfgs, torch_threads: int = 1, cpu: bool = False) -> None:
        det_cfg, cls_cfg = cfgs
        self._detector = Detector(det_cfg, torch_threads, batching=False, cpu=cpu)
        self._classifier = (
            classifier_class(cls_cfg)(cls_cfg, torch_threads, batching=False, cpu=cpu) if cls_cfg is not None else None
        )
        self._max_batch = (det_cfg.max_batch, cls_cfg.max_batch if cls_cfg is not None else 1)

    def names(self) -> tuple[str, ...]:
        """The detector's class names by class id."""
        return self._detector.names()

    def embedding_dim(self) -> int:
        """The ViT embedding's size; 0 without a ViT."""
        return self._classifier.embedding_dim() if self._classifier is not None else 0

    def set_prompts(self, zs: ZeroShotConfig) -> None:
        """The scene prompts of ``zs``, where the scenes come from ``models.zero_shot``."""
        if isinstance(self._classifier, ZeroShotSceneClassifier):
            self._classifier.set_prompts(zs)

    def analyze_batch(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[VisionOut]:
        """Both models on ``images_bgr``, each in forward passes of at most its own ``max_batch``
        (a batch holds up to the larger of the two: ``vision_max_batch``)."""
        det_step, cls_step = self._max_batch
        detections = _in_passes(self._detector.detect_batch, images_bgr, det_step)
        if self._classifier is None:
            return [(d, None) for d in detections]
        scenes = _in_passes(self._classifier.classify_batch, images_bgr, cls_step)
        return list(zip(detections, scenes, strict=True))


class VisionWorker(VisionModels, MetricsExporter):
    """Ray actor: the two models (the detector alone without a ViT) behind one batcher, shared by every
    camera host."""

    def __init__(self, cfgs: VisionCfgs, torch_threads: int = 1) -> None:
        super().__init__(cfgs, torch_threads)
        set_process_role("vision")  # after the models' constructors, which set their own
        self._batcher = Batcher(
            self.analyze_batch, vision_max_batch(*cfgs), cfgs[0].max_wait_ms / 1000, name="vision-batcher"
        )

    def analyze(self, image_bgr: npt.NDArray[np.uint8]) -> VisionOut:
        """One frame's detections and scene; concurrent calls (all cameras) share forward passes."""
        return self._batcher.submit(image_bgr)

    def analyze_many(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[VisionOut]:
        """Several frames in one call (a camera host's coalesced frames); they share forward passes
        with each other and with other callers' frames already queued, without waiting for more."""
        return self._batcher.submit_many(images_bgr, wait=False)


class HostModelError(RuntimeError):
    """A model call in a camera host failed; the frames of that call are lost (and counted)."""


class HostModels:
    """``ray.placement: hosts``: the two models (the detector alone with ``models.classifier: null``)
    inside a camera-host process, on one thread of their own, and the crop classifier
    (``models.crops``), when configured, on a second.

    Its cameras' frames reach it through the host's coalescer (``send``: one batch at a time; frames
    that arrive meanwhile leave together in the next), so nothing crosses a process boundary; their
    crops through a second coalescer (``send_crops``), so the crops of all the host's cameras share
    forward passes too. The crops have a thread of their own because a camera waits for its frame's
    crop labels before it goes on: behind a detector batch that wait would be a batch long. The
    threads' CPU is the host's ``vision`` and ``crop_model`` steps (``vigil_camera_cpu_seconds``)."""

    def __init__(
        self,
        cfgs: VisionCfgs,
        torch_threads: int = 1,
        crops: CropClassifierConfig | None = None,
    ) -> None:
        # On the CPU even where a GPU is visible: a host reserves no GPU with Ray, and every host
        # would put its own copy of the models (and a CUDA context) on it, unaccounted.
        self.models = VisionModels(cfgs, torch_threads, cpu=True)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vision")
        self.crops = None if crops is None else classifier_class(crops)(crops, torch_threads, batching=False, cpu=True)
        self._crop_pool = ThreadPoolExecutor(1, thread_name_prefix="crops") if crops is not None else None
        self._clocks: dict[str, StepClock] = {}  # by step, each made on its pool's thread (it clocks that thread)

    def send(self, images_bgr: list[npt.NDArray[np.uint8]]) -> Future[list[VisionOut]]:
        return self._pool.submit(self._run, "vision", self.models.analyze_batch, images_bgr)

    def send_crops(self, crops_bgr: list[npt.NDArray[np.uint8]]) -> Future[list[LabelScore]]:
        """Labels for crops (any cameras', in order); only with ``models.crops``."""
        if self._crop_pool is None:
            raise RuntimeError("no crop classifier in this host (models.crops is off)")
        return self._crop_pool.submit(self._run, "crop_model", self._label_crops, crops_bgr)

    def set_prompts(self, zs: ZeroShotConfig) -> None:
        """The scene and attribute prompts of ``zs``, for the models here that label from prompts."""
        self.models.set_prompts(zs)
        if isinstance(self.crops, ZeroShotCropClassifier):
            self.crops.set_prompts(zs)

    def _label_crops(self, crops_bgr: list[npt.NDArray[np.uint8]]) -> list[LabelScore]:
        assert self.crops is not None
        return self.crops.scores(self.crops.classify_batch(crops_bgr))

    def _run(self, step: str, fn: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[Any]:
        clock = self._clocks.get(step)
        if clock is None:
            clock = self._clocks[step] = StepClock()
        try:
            return fn(items)
        except Exception as exc:  # the cameras count the frames lost and go on
            log.exception("model call on %d items failed (%s)", len(items), step)
            raise HostModelError(f"model call failed: {type(exc).__name__}: {exc}") from exc
        finally:
            clock.lap(step)
