"""Where the models run (``ray.placement``), decided once by the driver, and what a camera host is
given to reach them.

Three layouts:

- ``hosts``: each camera-host process loads its own copy of the detector, the scene ViT, the crop
  classifier and the clip head, and batches its cameras' frames in-process: no Ray call per frame.
  For CPU machines, where a Ray call costs as much CPU as a slice of the model.
- ``workers``: shared detector and classifier actor pools; a frame is put into Ray's object store
  once and read by both. Any worker serves any camera; the pools take GPUs.
- ``fused``: one pool of vision workers holding both models; one call per frame (file cameras'
  frames coalesced per host, ``ray.host_calls_per_replica``).

``auto`` picks ``hosts`` where the Ray cluster has no GPU and ``workers`` where it has one.

Every layout leaves out what the config switches off: with ``models.classifier: null`` no ViT is
loaded (no classifier pool with ``workers``; the vision workers and the hosts hold the detector
alone), and with ``models.temporal: null`` no clip head is loaded, in the hosts or as an actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.core.config import (
    ClassifierConfig,
    CropClassifierConfig,
    DetectorConfig,
    RayConfig,
    TemporalConfig,
)

Layout = Literal["hosts", "workers", "fused"]
DEFAULT_CAMERAS_PER_HOST = 16  # where hosts only decode and run per-camera work, a process per 16 cameras


@dataclass(frozen=True)
class PlacementChoice:
    """The layout the driver runs, how cameras share camera hosts, and why (printed at start).
    Exactly one of ``cameras_per_host`` (a host takes that many, then a new host starts) and
    ``max_hosts`` (cameras spread over at most that many hosts, the least loaded first) is set."""

    layout: Layout
    reason: str
    cameras_per_host: int | None = None
    max_hosts: int | None = None

    def describe(self) -> str:
        if self.max_hosts is not None:
            sizing = f"cameras spread over up to {self.max_hosts} camera host(s), one per model thread's core"
        else:
            sizing = f"up to {self.cameras_per_host} camera(s) per camera host"
        return f"placement: {self.layout} ({self.reason}); {sizing}"


def resolve_placement(ray_cfg: RayConfig, cluster: Mapping[str, float]) -> PlacementChoice:
    """The concrete layout for ``ray_cfg.placement`` on a cluster with ``cluster`` resources
    (``ray.cluster_resources()``: ``CPU``, ``GPU``, ...)."""
    layout: Layout
    if ray_cfg.placement == "auto":
        has_gpu = cluster.get("GPU", 0) > 0
        layout = "workers" if has_gpu else "hosts"
        reason = "auto: the Ray cluster has a GPU" if has_gpu else "auto: the Ray cluster has no GPU"
    else:
        layout, reason = ray_cfg.placement, "as configured"
    if isinstance(ray_cfg.cameras_per_host, int):
        return PlacementChoice(layout, reason, cameras_per_host=ray_cfg.cameras_per_host)
    if layout == "hosts":
        # One host per torch_threads usable CPUs: the hosts' models keep every core busy, and
        # cameras added later join the least loaded host instead of loading more copies.
        hosts = max(1, int(cluster.get("CPU", 1)) // ray_cfg.detector.torch_threads)
        return PlacementChoice(layout, reason, max_hosts=hosts)
    return PlacementChoice(layout, reason, cameras_per_host=DEFAULT_CAMERAS_PER_HOST)


def unused_keys(ray_cfg: RayConfig, layout: Layout) -> list[str]:
    """Tuning keys set in ``ray_cfg`` that ``layout`` does not use. With an explicit placement the
    config refuses them; with ``auto`` they are accepted for either layout, and the driver warns
    about those the chosen layout leaves unused."""
    return [key for key in ray_cfg.keys_set() if layout not in RayConfig.KEY_LAYOUTS[key.split(".")[0]]]


@dataclass(frozen=True)
class ClipHeadSpec:
    """What a camera host needs to load the clip head itself (``ray.clip_head: hosts``)."""

    cfg: TemporalConfig
    in_dim: int
    emb_dim: int


@dataclass(frozen=True)
class HostModelsSpec:
    """What a camera host needs to load the detector, the ViT and the crop classifier itself
    (placement ``hosts``)."""

    detector: DetectorConfig
    classifier: ClassifierConfig | None  # models.classifier: null: no ViT in the hosts
    torch_threads: int = 1
    crops: CropClassifierConfig | None = None  # models.crops: the crop classifier runs in the hosts too
    pin_cores: int = 0  # ray.pin_hosts: the host keeps to this many cores of its own (0: the OS places it)


@dataclass(frozen=True)
class HostPlan:
    """Everything a camera host is given to reach the models, for one layout. Built once by the
    driver; travels to every host."""

    layout: Layout
    detectors: tuple[Any, ...] = ()  # workers: Detector actors; fused: VisionWorker actors
    classifiers: tuple[Any, ...] = ()  # workers: Classifier actors
    crops: tuple[Any, ...] = ()  # workers / fused with models.crops: CropClassifier actors
    clip_head_actor: Any = None  # ray.clip_head: actor
    clip_head: ClipHeadSpec | None = None  # ray.clip_head: hosts: each host loads the head from this
    # (both None: models.temporal is null, no clip head anywhere)
    host_models: HostModelsSpec | None = None  # hosts: each host loads the models from this
    host_calls_per_replica: int = 0  # fused: a host coalesces its file cameras' frames (0: a call per frame)
    call_max_frames: int = 8  # frames per coalesced call (the larger max_batch of the two models)
    call_max_bytes: int | None = None  # and their bytes (ray.max_inline_bytes: calls stay inline)

    def actors(self) -> dict[str, tuple[str, Any]]:
        """key -> (worker kind, handle) for every model actor of this plan."""
        pools = (
            ("vision" if self.layout == "fused" else "detector", self.detectors),
            ("classifier", self.classifiers),
            ("crops", self.crops),
        )
        named = {f"{kind}:{i}": (kind, handle) for kind, pool in pools for i, handle in enumerate(pool)}
        if self.clip_head_actor is not None:
            named["temporal"] = ("temporal", self.clip_head_actor)
        return named
