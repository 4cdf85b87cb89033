"""How a camera reaches the models, one implementation per placement, behind three small interfaces.

A ``CameraRunner`` only ever calls ``VisionClient.submit`` (detector + scene ViT on a frame; the
result is fetched later, so several frames can be in flight), ``CropClient.label`` (the crop
classifier on a frame's boxes) and ``ClipHeadClient.classify`` (the clip head on a window). What
sits behind them is the placement's business (``pipeline.runtime.placement``):

==========  =====================================  ==============================
layout      vision                                 crops
==========  =====================================  ==============================
hosts       in-process models, via the coalescer   in-process, via a coalescer
fused       a vision worker (file cameras: the     crop-classifier actors
            host's coalescer, several per call)
workers     detector + classifier actors, the      crop-classifier actors
            frame put once in the object store
==========  =====================================  ==============================

The clip head runs in the host (``ray.clip_head: hosts``) or in one actor (``actor``), whatever the layout.
Without a scene ViT (``models.classifier: null``) a frame's scene is None; without a clip head
(``models.temporal: null``) a camera has no clip-head client.
``HostClients`` builds them in a camera host and owns what its cameras share (the models loaded in
the host, the coalescers, the clip head).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import ray
import torch
from prometheus_client import Histogram

from pipeline.core.config import CameraConfig, CameraMode, TemporalConfig, ZeroShotActivities, ZeroShotConfig
from pipeline.core.messages import Detections, FloatArray, LabelScore, SceneResult
from pipeline.core.metrics import STAGE_LATENCY, set_process_role
from pipeline.runtime.coalescer import Coalescer, actor_sender
from pipeline.runtime.placement import HostPlan
from pipeline.runtime.vision import HostModels
from workers.clip_head import ClipHead
from workers.common import claim_cores, pin_process

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
VisionResult = tuple[Detections, SceneResult | None]  # the scene: None without a scene ViT


class VisionTicket(Protocol):
    """A frame handed to the models; ``result`` waits for its detections and scene."""

    def result(self, timeout_s: float) -> VisionResult: ...


class VisionClient(Protocol):
    def submit(self, image: Image) -> VisionTicket:
        """Send one frame (already scaled to the models' size) to the detector and the scene ViT."""
        ...


class CropClient(Protocol):
    def label(self, crops: list[Image], frame_id: int, timeout_s: float) -> list[LabelScore]:
        """The crop classifier's label for each crop, in order."""
        ...


class ClipHeadClient(Protocol):
    in_process: bool  # the head's CPU is this thread's (the camera clocks it as the clip_head step)

    def classify(self, window: FloatArray, timeout_s: float) -> LabelScore:
        """The clip head's label for one window of per-frame features."""
        ...


# -- vision ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OneCall:
    """A frame whose detections and scene one call answers (the models in this host, a vision worker)."""

    fetch: Callable[[float], VisionResult]  # waits at most the given seconds for the call's answer
    sent_at: float
    latency: Histogram

    def result(self, timeout_s: float) -> VisionResult:
        out = self.fetch(timeout_s)
        self.latency.observe(time.time() - self.sent_at)
        return out


def _ray_get(ref: Any, timeout_s: float) -> Any:
    return ray.get(ref, timeout=timeout_s)


@dataclass(frozen=True)
class _Split:
    """A frame read from the object store by a detector and a classifier in parallel (scene_ref
    None: no classifier, the detector alone)."""

    det_ref: Any
    scene_ref: Any
    sent_at: float

    def result(self, timeout_s: float) -> VisionResult:
        detections: Detections = ray.get(self.det_ref, timeout=timeout_s)
        STAGE_LATENCY.labels("detect").observe(time.time() - self.sent_at)
        if self.scene_ref is None:
            return detections, None
        scene: SceneResult = ray.get(self.scene_ref, timeout=timeout_s)
        STAGE_LATENCY.labels("classify").observe(time.time() - self.sent_at)
        return detections, scene


class CoalescedVision:
    """Frames leave with the frames the host's other cameras have ready (hosts; fused file cameras)."""

    def __init__(self, coalescer: Coalescer) -> None:
        self._coalescer, self._latency = coalescer, STAGE_LATENCY.labels("vision")

    def submit(self, image: Image) -> VisionTicket:
        return _OneCall(self._coalescer.submit(image).get, time.time(), self._latency)


class FusedVision:
    """One call per frame to a vision worker; Ray moves the frame (inline when small)."""

    def __init__(self, replicas: tuple[Any, ...], turn: itertools.count[int]) -> None:
        self._replicas, self._turn, self._latency = replicas, turn, STAGE_LATENCY.labels("vision")

    def submit(self, image: Image) -> VisionTicket:
        worker = self._replicas[next(self._turn) % len(self._replicas)]
        return _OneCall(functools.partial(_ray_get, worker.analyze.remote(image)), time.time(), self._latency)


class SplitVision:
    """The frame stored once, read by a detector and a classifier replica (taken in turn). Without
    classifiers (``models.classifier: null``) the frame goes to the detector alone, in the call."""

    def __init__(self, detectors: tuple[Any, ...], classifiers: tuple[Any, ...], turn: itertools.count[int]) -> None:
        self._detectors, self._classifiers, self._turn = detectors, classifiers, turn

    def submit(self, image: Image) -> VisionTicket:
        n, sent_at = next(self._turn), time.time()
        if not self._classifiers:  # one reader: Ray moves the frame with the call (inline when small)
            return _Split(self._detectors[n % len(self._detectors)].detect.remote(image), None, sent_at)
        image_ref = ray.put(image)
        det_ref = self._detectors[n % len(self._detectors)].detect.remote(image_ref)
        scene_ref = self._classifiers[n % len(self._classifiers)].classify.remote(image_ref)
        return _Split(det_ref, scene_ref, sent_at)


# -- crops and clip head --------------------------------------------------------------------------


class CoalescedCrops:
    """The host's crop classifier: the crops of all its cameras share forward passes."""

    def __init__(self, coalescer: Coalescer) -> None:
        self._coalescer = coalescer

    def label(self, crops: list[Image], frame_id: int, timeout_s: float) -> list[LabelScore]:
        deadline = time.monotonic() + timeout_s  # one wait for the frame's crops, however many calls
        slots = self._coalescer.submit_many(crops)
        return [slot.get(max(0.0, deadline - time.monotonic())) for slot in slots]


class ActorCrops:
    """Crop-classifier actors; a frame's crops travel in one call."""

    def __init__(self, pool: tuple[Any, ...]) -> None:
        self._pool = pool

    def label(self, crops: list[Image], frame_id: int, timeout_s: float) -> list[LabelScore]:
        worker = self._pool[frame_id % len(self._pool)]
        scores: list[LabelScore] = ray.get(worker.classify_crops.remote(crops), timeout=timeout_s)
        return scores


class LocalClipHead:
    """The host's clip head, called in this process: no call, no round trip."""

    in_process = True

    def __init__(self, head: ClipHead) -> None:
        self.head = head

    def classify(self, window: FloatArray, timeout_s: float) -> LabelScore:
        return self.head.classify_batch([window])[0]


class ActorClipHead:
    """The clip-head actor (``ray.clip_head: actor``)."""

    in_process = False

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def classify(self, window: FloatArray, timeout_s: float) -> LabelScore:
        scores: list[LabelScore] = ray.get(self._actor.classify_batch.remote([window]), timeout=timeout_s)
        return scores[0]


@dataclass(frozen=True)
class CameraClients:
    """What one camera calls: the vision client, the crop client (None: models.crops off), the clip
    head (None: models.temporal off)."""

    vision: VisionClient
    crops: CropClient | None
    clip_head: ClipHeadClient | None


class HostClients:
    """Builds each camera's clients in a camera host, from the driver's ``HostPlan``; owns what the
    host's cameras share. With placement ``hosts`` this loads the models (pinned to the host's cores
    first, where ``ray.pin_hosts`` gave it a share)."""

    def __init__(self, plan: HostPlan) -> None:
        self._plan = plan
        self._vision: HostModels | None = None
        self._coalescer: Coalescer | None = None  # made with the first camera that uses one
        self._crops: CropClient | None = ActorCrops(plan.crops) if plan.crops else None
        threads = 1
        if plan.host_models is not None:
            spec = plan.host_models
            threads = spec.torch_threads
            if spec.pin_cores:  # before the models start threads of their own: every thread inherits it
                _pin(spec.pin_cores)
            self._vision = HostModels((spec.detector, spec.classifier), spec.torch_threads, spec.crops)
            set_process_role("camera")  # the models' constructors set their own role and OpenCV threads
            cv2.setNumThreads(1)
            if spec.crops is not None:  # single crops are the items: a call takes every waiting frame's crops
                crop_calls = Coalescer((self._vision.send_crops,), spec.crops.max_batch, count_calls=False)
                self._crops = CoalescedCrops(crop_calls)
        self._clip_head: ClipHeadClient | None = None  # models.temporal: null
        if plan.clip_head is not None:  # one head for this host's cameras
            torch.set_num_threads(threads)
            head = plan.clip_head
            self._clip_head = LocalClipHead(ClipHead(head.cfg, head.in_dim, emb_dim=head.emb_dim, in_host=True))
        elif plan.clip_head_actor is not None:
            self._clip_head = ActorClipHead(plan.clip_head_actor)

    def set_prompts(self, zs: ZeroShotConfig, head: TemporalConfig | None) -> None:
        """New prompts for the models this host runs itself: scenes and attributes (placement
        ``hosts``) and activities (``head``, a clip head in the host)."""
        if self._vision is not None:
            self._vision.set_prompts(zs)
        if isinstance(self._clip_head, LocalClipHead) and isinstance(head, ZeroShotActivities):
            self._clip_head.head.set_prompts(head)

    def for_camera(self, cam: CameraConfig) -> CameraClients:
        return CameraClients(self._vision_for(cam), self._crops, self._clip_head)

    def _vision_for(self, cam: CameraConfig) -> VisionClient:
        """The in-process models for every camera with placement ``hosts``; with placement ``fused`` a
        coalesced call for file cameras only: it costs overloaded live cameras frames, for no
        latency gain (docs/performance.md)."""
        plan = self._plan
        turn = itertools.count(zlib.crc32(cam.id.encode()))  # cameras start on different replicas
        if self._vision is not None:
            if self._coalescer is None:
                self._coalescer = Coalescer((self._vision.send,), plan.call_max_frames)
            return CoalescedVision(self._coalescer)
        if plan.layout == "fused":
            if plan.host_calls_per_replica > 0 and cam.effective_mode is CameraMode.FILE:
                if self._coalescer is None:
                    senders = tuple(actor_sender(d, "analyze_many") for d in plan.detectors)
                    self._coalescer = Coalescer(
                        senders, plan.call_max_frames, plan.host_calls_per_replica, plan.call_max_bytes
                    )
                return CoalescedVision(self._coalescer)
            return FusedVision(plan.detectors, turn)
        return SplitVision(plan.detectors, plan.classifiers, turn)


def _pin(cores_wanted: int) -> None:
    cores = claim_cores(cores_wanted, wait_s=2.0)  # a host just stopped may still hold its cores
    pinned = cores is not None and pin_process(cores)
    where = f"on cores {list(cores)}" if pinned and cores else "unpinned (no cores free to claim)"
    log.info("camera host: %s", where)
