"""The one wiring point: builds the Ray actor graph in an explicit order and runs it.

    placement hosts (CPU):    camera-host[i] ── decode, detector + ViT (+ crops, clip head) in-process,
                                                 track, clip window, events, publish
    placement workers (GPU):  detector ─┐ classifier ─┤ crops ─┤  shared, stateless model workers
                              camera-host[i] ── decode, track, clip window, events, publish
    placement fused:          vision (detector + classifier in one actor) instead of the two pools

Order: Ray -> placement (``pipeline.runtime.placement``) -> model workers (and wait until their models
loaded) -> camera hosts -> control channel -> /metrics. Shutdown runs in reverse. Nothing per-frame
happens in the driver. A model the config switches off (``models.classifier``, ``models.crops``,
``models.temporal``: null) is started nowhere.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from prometheus_client.metrics_core import Metric

from pipeline.core.config import (
    CameraConfig,
    ConfigError,
    RayConfig,
    VigilConfig,
    WorkerResources,
)
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.config.loader import validate_prompts
from pipeline.core.config.zero_shot import ZeroShotConfig
from pipeline.core.messages import CameraState, CameraStatus, StatusEvent
from pipeline.core.metrics import (
    PROCESS,
    WORKER_RESTARTS,
    MetricsReport,
    MetricsServer,
    forget_camera,
    set_process_role,
)
from pipeline.events.publisher import EventPublisher
from pipeline.events.snapshots import FrameSnapshot
from pipeline.runtime.camera import CameraSettings
from pipeline.runtime.camera_metrics import set_stream_state
from pipeline.runtime.control import SNAPSHOT_TIMEOUT_S, ControlServer
from pipeline.runtime.control_auth import ControlKeyError
from pipeline.runtime.hosts import HOST_TIMEOUT_S, PING_TIMEOUT_S, HostPool, hosts_needed
from pipeline.runtime.leftovers import mark_local_session, stop_leftovers
from pipeline.runtime.placement import (
    ClipHeadSpec,
    HostModelsSpec,
    HostPlan,
    Layout,
    PlacementChoice,
    resolve_placement,
    unused_keys,
)
from pipeline.runtime.vision import VisionModels, VisionWorker, vision_max_batch
from workers.clip_head import ClipHead, summary_dim
from workers.common import release_free_memory
from workers.detector import Detector, ModelLoadError
from workers.zero_shot import activity_head, classifier_class

log = logging.getLogger(__name__)

METRICS_FETCH_TIMEOUT_S = 2.0
PROMPT_CHECK_S = 2.0  # how often the model workers given prompts at run time are checked for a restart
_TERMINAL = (CameraState.STOPPED, CameraState.FAILED)


WORKER_START_TIMEOUT_S = 300.0  # model loading included; a worker that cannot be scheduled fails here


class PipelineError(RuntimeError):
    """The pipeline could not start (a model failed to load, a port is taken, ...)."""


def offline_env(allow_download: bool) -> dict[str, str]:
    """Environment every Ray worker gets: no telemetry, and no hub access unless asked for."""
    env = {"RAY_USAGE_STATS_ENABLED": "0", "YOLO_AUTOINSTALL": "0", "PYTHONUNBUFFERED": "1"}
    if not allow_download:
        env.update({"YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    return env


def local_ray_settings(ray_cfg: RayConfig) -> dict[str, Any]:
    """Ray's own settings (its ``_system_config``) where Vigil starts Ray; a cluster sets these at its start."""
    return {
        # A model-size frame (640x360 = 675 KiB) then goes to a vision worker (placement fused) inside the call:
        # no object-store put and no raylet work per frame (docs/performance.md). A cluster sets this at
        # its own start (RAY_max_direct_call_object_size on every node).
        "max_direct_call_object_size": ray_cfg.max_inline_bytes,
        # Vigil runs actors only, each in a process of its own: the task workers Ray starts
        # ahead (one per CPU) would sit idle, each still taking some CPU (docs/performance.md).
        "enable_worker_prestart": False,
        "prestart_worker_first_driver": False,
        # Ray's own metrics and the statistics it keeps on every event-loop handler feed only Ray's
        # dashboard, and cost the camera hosts CPU on every call and timer (ray.internal_metrics).
        "enable_metrics_collection": ray_cfg.internal_metrics,
        "event_stats": ray_cfg.internal_metrics,
        # Ray's GCS keeps a record of every task and actor call for the dashboard's task views (up to
        # 100,000, a few KB each): without them its memory stays flat (docs/performance.md, "Memory
        # over time"). With internal_metrics it keeps the newest 1,000.
        "task_events_report_interval_ms": 1000 if ray_cfg.internal_metrics else 0,
        "task_events_max_num_task_in_gcs": 1000,
    }


def init_ray(cfg: VigilConfig, log_to_driver: bool = True) -> None:
    """Connect to the configured Ray cluster, or start a local one (no dashboard)."""
    if ray.is_initialized():
        return
    env = offline_env(cfg.models.allow_download)
    os.environ.update(env)
    kwargs: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "log_to_driver": log_to_driver,
        "logging_level": logging.WARNING,
    }
    local = cfg.ray.address is None
    if local:
        kwargs.update(num_cpus=cfg.ray.num_cpus, include_dashboard=False)
        kwargs["_system_config"] = local_ray_settings(cfg.ray)
        stop_leftovers()  # of a Vigil run that was killed: they would hold memory for minutes
    # Ray announces its (welcome) token auth on every start; keep it out of the user's terminal.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # "local": a cluster of this process's own, never one that `ray start` left listed in Ray's temp folder.
    ray.init(address=cfg.ray.address or "local", **kwargs)
    if local:
        mark_local_session()


def _pool(cls: type, model_cfg: Any, res: WorkerResources, concurrency: int) -> tuple[Any, ...]:
    """``res.replicas`` restartable, threaded actors of a model worker class."""
    actor: Any = ray.remote(cls).options(
        max_restarts=-1, max_task_retries=2, max_concurrency=concurrency, **_gpu_options(res)
    )
    return tuple(actor.remote(model_cfg, res.torch_threads) for _ in range(res.replicas))


def _gpu_options(res: WorkerResources) -> dict[str, float]:
    if res.num_gpus == "auto":
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        # Half a GPU: the detector and the classifier (both auto by default) share one GPU. A whole
        # GPU each would leave the classifier unschedulable on a one-GPU machine.
        gpus = 0.5 if resources.get("GPU", 0) > 0 else 0.0
    else:
        gpus = float(res.num_gpus)
    return {"num_cpus": res.num_cpus, "num_gpus": gpus}


@dataclass
class Pipeline:
    """A running Vigil pipeline. ``start()`` builds everything; ``stop()`` tears it down."""

    cfg: VigilConfig
    redis_url: str
    metrics_port: int | None = None
    record_dir: Path | None = None  # `vigil eval`: cameras write each frame's raw results here
    plan: HostPlan | None = None
    placement: PlacementChoice | None = None  # what ray.placement resolved to, set by start()
    hosts: HostPool | None = None
    control: ControlServer | None = None
    metrics: MetricsServer | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _pids: dict[str, int] = field(default_factory=dict)
    _status: EventPublisher | None = None  # the driver's own status records (cameras lost with their host)
    _zero_shot: ZeroShotConfig | None = None  # models.zero_shot as it labels now (prompts set at run time)
    _prompt_lock: threading.Lock = field(default_factory=threading.Lock)
    _prompt_pids: dict[str, int] = field(default_factory=dict)  # model worker -> the process given the prompts
    _prompts_set: tuple[ZeroShotConfig, Any] | None = None  # set at run time: the prompts and the clip head's config
    _prompt_keeper: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._zero_shot = self.cfg.models.zero_shot
        self.placement = resolve_placement(self.cfg.ray, _cluster_resources(self.cfg))
        log.info("%s", self.placement.describe())
        for key in unused_keys(self.cfg.ray, self.placement.layout):
            log.warning(
                "ray.%s is set but not used with placement %s (%s)", key, self.placement.layout, self.placement.reason
            )
        self.plan = self._start_workers(self.placement.layout)
        self._check_classes()
        # The kinds this pipeline runs, their restart counters at zero (the clip head's too where
        # the hosts run it, so the series is the same in every placement).
        clip_head = {"temporal"} if self.cfg.models.temporal is not None else set()
        for kind in {kind for kind, _ in self.plan.actors().values()} | clip_head | {"camera"}:
            WORKER_RESTARTS.labels(kind)
        self.hosts = HostPool(
            self._camera_settings(), self.plan, self.placement.cameras_per_host, self.placement.max_hosts
        )
        for cam in self.cfg.cameras:
            try:
                self.hosts.add(cam)
            except ray.exceptions.RayError as exc:
                raise PipelineError(f"camera {cam.id} could not start: {_root_cause(exc)}") from None
        spool = self.cfg.events.spool
        self._status = EventPublisher(
            self.redis_url,
            "",
            spool.dir / "_pipeline.sqlite",
            stream_maxlen=self.cfg.redis.stream_maxlen,
            dedupe_ttl_s=self.cfg.redis.dedupe_ttl_s,
            memory_budget_mb=self.cfg.redis.memory_budget_mb,
            count_spooled=False,
        )
        self.hosts.supervise(self._camera_lost, self._camera_restored)
        try:
            self.control = ControlServer(self.redis_url, self, self.cfg.control)
        except ControlKeyError as exc:
            raise PipelineError(str(exc)) from None
        self.control.start()
        port = self.cfg.metrics.port if self.metrics_port is None else self.metrics_port
        self.metrics = MetricsServer(self.cfg.metrics.host, port, self._fetch_actor_metrics)
        try:
            self.metrics_port = self.metrics.start()
        except OSError as exc:
            raise PipelineError(
                f"metrics.port: cannot serve metrics on {self.cfg.metrics.host}:{port}: {exc.strerror}"
            ) from None

    def _check_classes(self) -> None:
        """Class names the config filters on must be the detector's: none of them is a config that
        can never raise an object event (an error), some of them a typo (a warning)."""
        names = set(self._class_names)
        shown = ", ".join(list(self._class_names)[:12]) + (", ..." if len(names) > 12 else "")
        crops = self.cfg.models.crop_model
        for key, wanted in (
            ("events.object_classes", self.cfg.events.object_classes),
            ("models.crops.classes", crops.classes if crops is not None else None),
        ):
            unknown = [c for c in wanted or () if c not in names]
            if unknown and len(unknown) == len(wanted or ()):
                raise PipelineError(
                    f"{key}: none of {', '.join(unknown)} is a class of the detector (its classes: {shown})"
                )
            if unknown:
                log.warning("%s: %s not a class of the detector, never matched (its classes: %s)", key,
                            ", ".join(unknown) + (" is" if len(unknown) == 1 else " are"), shown)  # fmt: skip

    def _host_cores(self) -> int:
        """``ray.pin_hosts``: the cores each camera host keeps to, its share of this machine's cores
        among the hosts the configured cameras start; 0 (unpinned) where the hosts do not split the
        cores evenly in shares of at least their torch threads, on a Ray cluster, whose hosts spread
        over nodes the driver does not see, or where the OS has no per-thread affinity (macOS)."""
        res = self.cfg.ray
        if not hasattr(os, "sched_getaffinity"):
            return 0
        cores = len(os.sched_getaffinity(0))
        if not res.pin_hosts or res.address is not None:
            return 0
        # A cluster joined without ray.address (Ray initialised by the application embedding Vigil).
        if ray.is_initialized() and len(ray.nodes()) > 1:  # type: ignore[no-untyped-call]
            return 0
        assert self.placement is not None
        # With max_hosts, cameras added later may start hosts up to that many: each gets its share now.
        p = self.placement
        if p.max_hosts is not None:
            hosts = p.max_hosts
        else:
            assert p.cameras_per_host is not None  # exactly one of the two is set
            hosts = max(1, hosts_needed(self.cfg.cameras, p.cameras_per_host))
        share = cores // hosts
        # Cores no host could claim would idle (6 cores, 4 hosts: two); unpinned, the OS uses them.
        return share if share >= res.detector.torch_threads and share * hosts == cores else 0

    def _start_workers(self, layout: Layout) -> HostPlan:
        """The model workers of ``layout`` (none with hosts), started and loaded; the plan hosts get."""
        models, res = self.cfg.models, self.cfg.ray
        scene, crop = models.scene_model, models.crop_model  # the ViTs, or what models.zero_shot makes
        host_models: HostModelsSpec | None = None
        dets: tuple[Any, ...] = ()
        clss: tuple[Any, ...] = ()
        # Threaded actors: concurrent calls from all cameras wait in the worker's batcher.
        if layout == "hosts":  # no vision actors; each camera host loads the models itself
            host_models = HostModelsSpec(models.detector, scene, res.detector.torch_threads, crop, self._host_cores())
        elif layout == "fused":  # both models in each detector replica; cameras make one call per frame
            concurrency = 4 * vision_max_batch(models.detector, scene)
            dets = _pool(VisionWorker, (models.detector, scene), res.detector, concurrency)
        else:
            dets = _pool(Detector, models.detector, res.detector, 4 * models.detector.max_batch)
            if scene is not None:
                clss = _pool(classifier_class(scene), scene, res.classifier, 4 * scene.max_batch)
        # Crops: one call per frame carries all its boxes, so concurrency counts callers, not crops.
        # With placement hosts the camera hosts run the crop classifier too.
        crops = () if crop is None or host_models else _pool(classifier_class(crop), crop, res.crops, 64)
        try:
            if host_models is not None:
                self._class_names, embed_dim = _load_here(host_models)
            else:
                # Every replica has loaded its model before any camera starts.
                self._class_names = ray.get([d.names.remote() for d in dets], timeout=WORKER_START_TIMEOUT_S)[0]
                vits = clss or (dets if layout == "fused" else ())  # fused: the VisionWorkers answer for their ViT
                embed_dims = ray.get([c.embedding_dim.remote() for c in vits], timeout=WORKER_START_TIMEOUT_S)
                embed_dim = embed_dims[0] if embed_dims else 0  # 0: no ViT (models.classifier: null)
            ray.get([c.embedding_dim.remote() for c in crops], timeout=WORKER_START_TIMEOUT_S)
            clip_actor, clip_head = self._start_clip_head(embed_dim)
        except ray.exceptions.RayActorError as exc:
            raise PipelineError(f"a model worker failed to start: {_root_cause(exc)}") from None
        except ray.exceptions.GetTimeoutError:
            raise PipelineError(
                f"the model workers did not start within {WORKER_START_TIMEOUT_S:.0f} s: the cluster may lack the "
                f"resources they ask for (ray.detector / ray.classifier / ray.temporal; cluster has "
                f"{ray.cluster_resources()})"  # type: ignore[no-untyped-call]
            ) from None
        return HostPlan(
            layout,
            detectors=dets,
            classifiers=clss,
            crops=crops,
            clip_head_actor=clip_actor,
            clip_head=clip_head,
            host_models=host_models,
            host_calls_per_replica=res.host_calls_per_replica if layout == "fused" else 0,
            call_max_frames=vision_max_batch(models.detector, scene),
            call_max_bytes=self.cfg.ray.max_inline_bytes or None,
        )

    def _start_clip_head(self, embed_dim: int) -> tuple[Any, ClipHeadSpec | None]:
        """The clip-head actor (``ray.clip_head: actor``), or the spec each camera host loads it from;
        neither with ``models.temporal: null``. ``embed_dim`` 0: no ViT, the head gets the detection
        summary alone."""
        cfg, res = activity_head(self.cfg.models.temporal, self.cfg.models.zero_shot), self.cfg.ray
        self._head_kind = ""
        if cfg is None:
            return None, None
        in_dim = embed_dim + summary_dim(len(self._class_names))
        if res.clip_head == "actor":
            temporal: Any = ray.remote(ClipHead).options(
                max_restarts=-1, max_task_retries=2, **_gpu_options(res.temporal)
            )
            actor = temporal.remote(cfg, in_dim, res.temporal.torch_threads, emb_dim=embed_dim)
            try:
                self._head_kind = ray.get(actor.head_kind.remote(), timeout=WORKER_START_TIMEOUT_S)
            except ray.exceptions.RayActorError as exc:  # its weights did not load, or do not fit the features
                raise PipelineError(f"models.temporal.weights: clip-head actor: {_root_cause(exc)}") from None
            return actor, None
        try:  # each camera host loads its own; loaded once here too, so a bad checkpoint fails now
            self._head_kind = ClipHead(cfg, in_dim, emb_dim=embed_dim, in_host=True).kind
        except (ValueError, OSError, RuntimeError) as exc:
            raise PipelineError(f"models.temporal.weights: {exc}") from None
        return None, ClipHeadSpec(cfg, in_dim, embed_dim)

    def _camera_settings(self) -> CameraSettings:
        t = self.cfg.models.temporal
        return CameraSettings(
            redis_url=self.redis_url,
            redis=self.cfg.redis,
            events=self.cfg.events,
            window=t.window if t is not None else 0,
            stride=t.stride if t is not None else 0,
            class_names=tuple(self._class_names),
            run_id=self.run_id,
            head_kind=self._head_kind,
            record_dir=self.record_dir,
            crops=self.cfg.models.crop_model,
            model_input_px=self.cfg.models.input_px,
        )

    def _camera_lost(self, cam: CameraConfig, reason: str) -> None:
        """A camera's host died: its status says so at once, and its stream reads down (not absent)
        until the camera runs again."""
        set_stream_state(cam.id, CameraState.FAILED)
        if self._status is not None:
            self._status.publish_status(
                StatusEvent(camera_id=cam.id, state=CameraState.FAILED, reason=reason, url=cam.display_url)
            )

    def _camera_restored(self, cam: CameraConfig) -> None:
        forget_camera(cam.id)  # the camera's host reports its series again

    def _named_actors(self) -> dict[str, tuple[str, Any]]:
        """key -> (worker kind, handle) for every actor."""
        hosts = self.hosts.named_actors() if self.hosts is not None else {}
        named = {key: ("camera", a) for key, a in hosts.items()}
        if self.plan is not None:
            named.update(self.plan.actors())
        return named

    def _fetch_actor_metrics(self) -> list[list[Metric]]:
        """Every actor's families; a changed process id means Ray restarted that actor."""
        named = self._named_actors()
        refs = {key: handle.collect_metrics.remote() for key, (_kind, handle) in named.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=METRICS_FETCH_TIMEOUT_S)
        ready_set = set(ready)
        out = []
        for key, ref in refs.items():
            if ref not in ready_set:
                continue
            try:
                report: MetricsReport = ray.get(ref)
            except ray.exceptions.RayError as exc:
                log.debug("metrics: actor %s did not answer: %s", key, exc)
                continue
            previous = self._pids.get(key)
            # Ray restarts model workers; camera hosts are restarted (and counted) by the host pool.
            if previous is not None and previous != report.pid and named[key][0] != "camera":
                WORKER_RESTARTS.labels(named[key][0]).inc()
            self._pids[key] = report.pid
            out.append(report.families)
        return out

    def statuses(self, timeout_s: float = 2.0) -> list[CameraStatus]:
        return [] if self.hosts is None else self.hosts.statuses(timeout_s)

    def add_camera(self, cam: CameraConfig) -> None:
        """Start a camera on the running pipeline (CameraError: duplicate id)."""
        if self.hosts is None:
            raise PipelineError("the pipeline is not running")
        self.hosts.add(cam)

    def remove_camera(self, camera_id: str) -> CameraStatus:
        """Stop and forget a camera (CameraError: unknown id); returns its final status."""
        if self.hosts is None:
            raise PipelineError("the pipeline is not running")
        return self.hosts.remove(camera_id)

    def camera_analytics(self, camera_id: str) -> AnalyticsConfig | None:
        """A camera's zones and lines (``cameras[].analytics``) as it runs them (CameraError: unknown id)."""
        if self.hosts is None:
            raise PipelineError("the pipeline is not running")
        return self.hosts.analytics(camera_id)

    def set_camera_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> None:
        """Replace a camera's zones and lines (None: none), applied before its next frame and kept where
        its camera host is restarted (CameraError: unknown id; ConfigError: pixel geometry outside the
        camera's frames, and nothing changed)."""
        if self.hosts is None:
            raise PipelineError("the pipeline is not running")
        problem = self.hosts.set_analytics(camera_id, cfg)
        if problem is not None:
            raise ConfigError("analytics", [problem])

    def prompts(self) -> ZeroShotConfig | None:
        """``models.zero_shot`` as the pipeline labels with it now (None: no labels from prompts)."""
        return self._zero_shot

    def set_prompts(self, section: dict[str, Any]) -> ZeroShotConfig:
        """Label with new prompts (``section``: keys of ``models.zero_shot`` but its backend; those it
        leaves out stay), from each model's next batch, without a restart. Their text embeddings are
        computed where the models run; hosts and model workers started later (a camera host that
        died, a worker Ray restarted) get them too. ConfigError: not valid, nothing changed."""
        if self.hosts is None or self.plan is None:
            raise PipelineError("the pipeline is not running")
        with self._prompt_lock:
            running = self._zero_shot
            if running is None:
                raise ConfigError("prompts", ["models.zero_shot is not set: this pipeline labels with trained models"])
            zs = validate_prompts(section, running)
            models = self.cfg.models.model_copy(update={"zero_shot": zs})
            head = activity_head(models.temporal, zs)
            plan = self.plan
            if plan.host_models is not None:
                plan = dataclasses.replace(
                    plan,
                    host_models=dataclasses.replace(
                        plan.host_models, classifier=models.scene_model, crops=models.crop_model
                    ),
                )
            if plan.clip_head is not None and head is not None:
                plan = dataclasses.replace(plan, clip_head=dataclasses.replace(plan.clip_head, cfg=head))
            self.plan = plan
            self.hosts.set_plan(plan)  # hosts started from now on load these prompts
            self._zero_shot, self._prompts_set = zs, (zs, head)  # the record first: what restarts are given
            self._prompt_pids = {}
            self._apply_prompts(self._prompt_targets(zs, head), {})
            self._prompt_hosts(zs, head)
        if self._prompt_keeper is None and self._prompt_pids:
            self._prompt_keeper = threading.Thread(target=self._keep_prompts, name="prompt-keeper", daemon=True)
            self._prompt_keeper.start()
        return zs

    def _prompt_hosts(self, zs: ZeroShotConfig, head: Any) -> None:
        """The new prompts to every camera host at once. A host that died meanwhile starts again
        from the new plan; one still starting (loading its models) takes them once it has: the call
        waits in its queue."""
        assert self.hosts is not None
        refs = {host.set_prompts.remote(zs, head): i for i, host in enumerate(self.hosts.actors())}
        ready, waiting = ray.wait(list(refs), num_returns=len(refs), timeout=HOST_TIMEOUT_S)
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                continue
            except ray.exceptions.RayError as exc:  # the host refused them: its models keep the old prompts
                log.error("prompts: camera host %d did not take them: %s", refs[ref], _root_cause(exc))
        if waiting:
            log.warning("prompts: %d camera host(s) still busy; they take the prompts when free", len(waiting))

    def _prompt_targets(self, zs: ZeroShotConfig, head: Any) -> dict[str, tuple[Any, tuple[Any, ...]]]:
        """The model workers that label from prompts, by key: (actor, the arguments of its set_prompts)."""
        plan = self.plan
        assert plan is not None
        targets: dict[str, tuple[Any, tuple[Any, ...]]] = {}
        scene_workers = plan.detectors if plan.layout == "fused" else plan.classifiers
        head_actor = (plan.clip_head_actor,) if plan.clip_head_actor is not None else ()
        for kind, actors, args in (
            ("scenes", scene_workers if zs.scenes else (), (zs,)),
            ("attributes", plan.crops if zs.attributes else (), (zs,)),
            ("activities", head_actor if zs.activities else (), (head,)),
        ):
            for i, actor in enumerate(actors):
                targets[f"{kind}:{i}"] = (actor, args)
        return targets

    def _apply_prompts(self, targets: dict[str, tuple[Any, tuple[Any, ...]]], only: dict[str, int]) -> None:
        """``set_prompts`` on each target (``only``: on those, whose process is new) and record the
        process each one has them in. A worker that is restarting is left to the keeper."""
        for key, (actor, args) in targets.items():
            if only and key not in only:
                continue
            before = -1
            try:
                before = ray.get(actor.pid.remote(), timeout=HOST_TIMEOUT_S)
                ray.get(actor.set_prompts.remote(*args), timeout=HOST_TIMEOUT_S)
                after = ray.get(actor.pid.remote(), timeout=HOST_TIMEOUT_S)
            except ray.exceptions.RayTaskError as exc:  # it refused them (alive): not retried every round
                self._prompt_pids[key] = before
                log.error("prompts: model worker %s did not take them: %s", key, _root_cause(exc))
                continue
            except (ray.exceptions.RayError, TimeoutError) as exc:
                self._prompt_pids[key] = -1
                log.warning("prompts: model worker %s did not take them yet (%s); trying again", key, _root_cause(exc))
                continue
            # A worker restarted between the calls has the config's prompts: the keeper's next round gives them.
            self._prompt_pids[key] = after if after == before else -1

    def _keep_prompts(self) -> None:
        """Ray restarts a model worker that died with the arguments it first had, the prompts of the
        config: a worker in a new process is given the prompts set since."""
        while not self._stopping.wait(PROMPT_CHECK_S):
            self.keep_prompts_once()

    def keep_prompts_once(self) -> list[str]:
        """One round of ``_keep_prompts``: the model workers given the prompts again (by key)."""
        with self._prompt_lock:
            if self._prompts_set is None or self.plan is None:
                return []
            targets = self._prompt_targets(*self._prompts_set)
            new: dict[str, int] = {}
            for key, (actor, _args) in targets.items():
                try:
                    pid = ray.get(actor.pid.remote(), timeout=PING_TIMEOUT_S)
                except (ray.exceptions.RayError, TimeoutError):
                    continue  # restarting: the next round sees its new process
                if pid != self._prompt_pids.get(key):
                    new[key] = pid
            if new:
                log.warning("prompts: giving the prompts set at run time to restarted workers %s", ", ".join(new))
                self._apply_prompts(targets, new)
            return sorted(new)

    def camera_snapshot(self, camera_id: str, timeout_s: float = SNAPSHOT_TIMEOUT_S) -> FrameSnapshot:
        """A camera's last processed frame at its decoded size, boxes, track ids, zones and lines drawn
        (CameraError: unknown id, or no frame processed yet)."""
        if self.hosts is None:
            raise PipelineError("the pipeline is not running")
        return self.hosts.snapshot(camera_id, timeout_s)

    def run(self, duration_s: float | None, stop: threading.Event, on_tick: Any = None) -> None:
        """Block until ``stop`` is set, ``duration_s`` passes, or every camera is done."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set():
            statuses = self.statuses()
            if on_tick is not None:
                on_tick(statuses)
            expected = len(self.hosts.camera_ids) if self.hosts is not None else 0
            if statuses and len(statuses) == expected and all(s.state in _TERMINAL for s in statuses):
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            stop.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))

    def stop(self) -> list[CameraStatus]:
        """Stop cameras (flushing their events), then workers and the metrics endpoint."""
        self._stopping.set()
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self._prompt_keeper is not None:
            self._prompt_keeper.join(timeout=PING_TIMEOUT_S + HOST_TIMEOUT_S)
        final = self.hosts.stop_all() if self.hosts is not None else []
        if self._status is not None:
            self._status.close()
            self._status = None
        if self.metrics is not None:
            self.metrics.stop()
        for _kind, actor in self._named_actors().values():
            ray.kill(actor)
        self.hosts = None
        self.plan = None
        return final


def _load_here(spec: HostModelsSpec) -> tuple[tuple[str, ...], int]:
    """Placement hosts: load the models (the crop classifier too) once in the driver (class names
    and embedding size for the cameras' settings; a bad weights path fails here, with its key path,
    before any camera starts)."""
    import cv2
    import torch

    role, threads, cv_threads = PROCESS.actor, torch.get_num_threads(), cv2.getNumThreads()
    try:
        try:
            models = VisionModels((spec.detector, spec.classifier), spec.torch_threads, cpu=True)
        except ModelLoadError as exc:  # names its key path already
            raise PipelineError(str(exc)) from None
        except Exception as exc:
            keys = "models.detector" if spec.classifier is None else "models.detector / models.classifier"
            raise PipelineError(f"{keys}: could not load: {exc}") from None
        if spec.crops is not None:
            try:
                classifier_class(spec.crops)(spec.crops, spec.torch_threads, batching=False, cpu=True)
            except ModelLoadError as exc:
                raise PipelineError(str(exc)) from None
            except Exception as exc:
                raise PipelineError(f"models.crops: could not load: {exc}") from None
        names, embedding_dim = models.names(), models.embedding_dim()
        del models
    finally:  # the models' constructors set the process's role and thread counts for a worker
        set_process_role(role)
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    release_free_memory()  # the driver keeps none of the models it loaded
    return names, embedding_dim


def _cluster_resources(cfg: VigilConfig) -> dict[str, float]:
    """The Ray cluster's resources; before Ray runs, what a local Ray would have."""
    if ray.is_initialized():
        return dict(ray.cluster_resources())  # type: ignore[no-untyped-call]
    import torch

    return {"CPU": float(cfg.ray.num_cpus or os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}


def _root_cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # Ray wraps the actor's exception in a multi-line report; its last line names the real error.
    return text[-1] if text else type(exc).__name__
