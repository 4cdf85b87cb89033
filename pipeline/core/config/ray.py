"""``ray``: where Vigil's processes run, and the one placement key that lays out the models."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.core.config.base import Strict

Placement = Literal["auto", "hosts", "workers", "fused"]

# Keys that no longer exist, and what replaced them (a config that still has one fails with this).
_REPLACED = {
    "vision": "ray.placement (hosts | workers | fused | auto): 'vision: hosts' is 'placement: hosts', "
    "'vision: workers' is 'placement: workers'",
    "fused": "ray.placement: 'fused: true' is 'placement: fused'",
}


class WorkerResources(Strict):
    """One kind of model worker actor (``placement: workers`` or ``fused``)."""

    replicas: int = Field(
        default=1, ge=1, le=64, description="Actors of this kind; cameras spread their frames over them round-robin"
    )
    num_cpus: float = Field(default=1.0, ge=0, le=256, description="Ray CPUs reserved by each actor")
    num_gpus: float | Literal["auto"] = Field(
        default="auto", description="GPUs per actor; auto: 0.5 with a GPU (detector and classifier share one)"
    )
    torch_threads: int = Field(default=1, ge=1, le=256, description="torch intra-op threads on CPU")


class RayConfig(Strict):
    """The Ray cluster and the placement of the models and cameras on it."""

    address: str | None = Field(default=None, description="Ray cluster address (ray://… or auto); null: start locally")
    placement: Placement = Field(
        default="auto",
        description="Where the detector and the ViTs run. hosts: inside each camera-host process, a copy per host, "
        "its cameras' frames batched together without a Ray call (CPU machines). workers: shared detector and "
        "classifier actor pools (ray.detector, ray.classifier, ray.crops; GPUs). fused: one pool of workers "
        "holding both models, one call per frame (ray.detector). auto: hosts where the cluster has no GPU, "
        "workers where it has one; the driver says which it chose",
    )
    cameras_per_host: int | Literal["auto"] = Field(
        default="auto",
        description="Cameras sharing one camera-host actor (process). auto: with placement hosts, the cameras "
        "spread over at most one host per ray.detector.torch_threads usable CPUs (cameras added later join the "
        "least loaded host); otherwise 16",
    )
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a locally started Ray")
    max_inline_bytes: int = Field(
        default=1 << 20,
        ge=0,
        le=64 << 20,
        description="Call arguments up to this size travel inside the call, not through the object store "
        "(Ray's max_direct_call_object_size, 100 KiB by default); only where Vigil starts Ray itself",
    )
    internal_metrics: bool = Field(
        default=False,
        description="Ray's own metrics and event-loop statistics, for Ray's dashboard (which Vigil does not "
        "start; Vigil exports its own metrics). Off, the camera hosts and workers spend less CPU on every call "
        "and timer; only where Vigil starts Ray itself (a cluster sets its own)",
    )
    host_calls_per_replica: int = Field(
        default=1,
        ge=0,
        le=64,
        description="placement fused, file-mode cameras: calls a camera host keeps in flight to each replica; "
        "frames that arrive meanwhile leave together in the next call (0: one call per frame)",
    )
    pin_hosts: bool = Field(
        default=True,
        description="placement hosts on a local Ray: each camera host keeps its threads on cores of its own, its "
        "equal share of the machine's cores, claimed with a lock file per core (a host that finds no share free "
        "runs unpinned), so its caches stay warm. Nothing is pinned where the hosts do not split the cores "
        "evenly in shares of at least detector.torch_threads, or on a Ray cluster. false: the OS places every thread",
    )
    clip_head: Literal["hosts", "actor"] = Field(
        default="hosts",
        description="Where the clip head runs. hosts: inside each camera-host process, on its CPU (no call per "
        "window; right for small heads like the demo's). actor: one clip-head actor with ray.temporal's "
        "resources (a big head that wants a GPU)",
    )
    detector: WorkerResources = Field(
        default_factory=WorkerResources,
        description="Detector workers (placement workers), vision workers (fused); with hosts only torch_threads, "
        "the model threads of each host",
    )
    classifier: WorkerResources = Field(
        default_factory=lambda: WorkerResources(num_cpus=0.5), description="Scene ViT workers (placement workers)"
    )
    crops: WorkerResources = Field(
        default_factory=lambda: WorkerResources(num_cpus=0.5),
        description="Crop classifier workers (placement workers or fused; hosts run it in-process)",
    )
    temporal: WorkerResources = Field(
        default_factory=lambda: WorkerResources(num_cpus=0, num_gpus=0),
        description="The clip-head actor (clip_head: actor)",
    )

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, new in _REPLACED.items():
                if old in data:
                    raise ValueError(f"ray.{old} no longer exists; use {new}")
        return data

    @field_validator("cameras_per_host")
    @classmethod
    def _per_host_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise ValueError("must be between 1 and 1024, or auto")
        return value

    @field_validator("temporal")
    @classmethod
    def _one_clip_head(cls, res: WorkerResources) -> WorkerResources:
        if res.replicas != 1:
            raise ValueError("replicas: the clip head runs as one actor (it is called once per window, not per frame)")
        return res

    # The layouts each tuning key means something with ("detector" stands for its replicas, num_cpus
    # and num_gpus; its torch_threads applies everywhere).
    KEY_LAYOUTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "pin_hosts": ("hosts",),
        "host_calls_per_replica": ("fused",),
        "classifier": ("workers",),
        "crops": ("workers", "fused"),
        "detector": ("workers", "fused"),
    }

    def keys_set(self) -> list[str]:
        """The layout-specific tuning keys this config sets (differs from the default)."""
        keys = [key for key in ("pin_hosts", "host_calls_per_replica", "classifier", "crops") if self._changed(key)]
        default = WorkerResources()
        keys += [
            f"detector.{k}"
            for k in ("replicas", "num_cpus", "num_gpus")
            if getattr(self.detector, k) != getattr(default, k)
        ]
        return keys

    @model_validator(mode="after")
    def _keys_fit_placement(self) -> RayConfig:
        """A tuning key set where the placement does not use it is an error, not silently ignored.
        With ``auto`` a key is accepted where either layout auto may pick (hosts, workers) uses it;
        the driver warns about those the chosen layout leaves unused."""
        layouts = ("hosts", "workers") if self.placement == "auto" else (self.placement,)
        for key in self.keys_set():
            where = self.KEY_LAYOUTS[key.split(".")[0]]
            if set(layouts) & set(where):
                continue
            if key.startswith("detector."):
                raise ValueError(
                    f"{key}: not used with placement: hosts (only detector.torch_threads is; "
                    "ray.cameras_per_host sets how many copies run)"
                )
            raise ValueError(f"{key}: not used with placement: {self.placement} (only with {' or '.join(where)})")
        if self.address is not None and self._changed("internal_metrics"):
            raise ValueError(
                "internal_metrics: only used where Vigil starts Ray (ray.address: null); a cluster sets "
                "Ray's metrics at its own start"
            )
        if self.clip_head == "hosts" and self._changed("temporal"):
            raise ValueError(
                "temporal: only used with clip_head: actor (with clip_head: hosts the head runs in the camera hosts)"
            )
        return self

    def _changed(self, name: str) -> bool:
        # Compared with the default, not with what was written, so a dumped and reloaded config passes.
        return bool(getattr(self, name) != RayConfig.model_fields[name].get_default(call_default_factory=True))
