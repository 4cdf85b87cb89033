"""Detect + classify in one actor (``ray.fused: true``).

With separate workers every frame costs two actor calls, two deserialisations of the frame, two
batcher hand-offs and two result fetches, and each model holds its own process. Where cores are
few (a CPU box) or the classifier is cheap next to the detector, that overhead is a sizeable part
of the CPU (BENCHMARKS.md). ``VisionWorker`` runs both models on the same batch in one process:
one call per frame, one copy of the frame, one batch. Its replicas (``ray.detector``) scale both
models together; keep separate workers where the two need different resources (a big ViT that
wants its own GPU, say).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from pipeline.config import ClassifierConfig, DetectorConfig
from pipeline.messages import Detections, SceneResult
from workers.batching import Batcher
from workers.classifier import Classifier
from workers.common import MetricsExporter, set_process_role
from workers.detector import Detector

log = logging.getLogger(__name__)


class VisionWorker(MetricsExporter):
    """The detector and the scene classifier behind one batcher."""

    def __init__(self, cfgs: tuple[DetectorConfig, ClassifierConfig], torch_threads: int = 1) -> None:
        det_cfg, cls_cfg = cfgs
        self._detector = Detector(det_cfg, torch_threads, batching=False)
        self._classifier = Classifier(cls_cfg, torch_threads, batching=False)
        set_process_role("vision")  # after the models' constructors, which set their own
        self._cls_max_batch = cls_cfg.max_batch
        self._batcher = Batcher(
            self.analyze_batch, det_cfg.max_batch, det_cfg.max_wait_ms / 1000, name="vision-batcher"
        )

    def names(self) -> tuple[str, ...]:
        """The detector's class names by class id."""
        return self._detector.names()

    def embedding_dim(self) -> int:
        return self._classifier.embedding_dim()

    def analyze(self, image_bgr: npt.NDArray[np.uint8]) -> tuple[Detections, SceneResult]:
        """One frame's detections and scene; concurrent calls (all cameras) share forward passes."""
        return self._batcher.submit(image_bgr)

    def analyze_many(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[tuple[Detections, SceneResult]]:
        """Several frames in one call (a camera host's coalesced frames); they share forward passes
        with each other and with other callers' frames already queued, without waiting for more."""
        return self._batcher.submit_many(images_bgr, wait=False)

    def analyze_batch(self, images_bgr: list[npt.NDArray[np.uint8]]) -> list[tuple[Detections, SceneResult]]:
        detections = self._detector.detect_batch(images_bgr)
        step = self._cls_max_batch  # the classifier's own batch cap still holds
        scenes = [
            s
            for i in range(0, len(images_bgr), step)
            for s in self._classifier.classify_batch(images_bgr[i : i + step])
        ]
        return list(zip(detections, scenes, strict=True))
