"""Placement of cameras on ``CameraHost`` actors.

Cameras with the same ``ray_resources`` share hosts. Either a host takes up to
``cameras_per_host`` cameras and the next camera starts a new host, or (placement ``hosts`` with
``cameras_per_host: auto``) the cameras spread over at most ``max_hosts`` hosts of a group, the
least loaded first, so cameras added at run time start no more copies of the models than that. New hosts spread over
the Ray nodes. Hosts stay up when they empty, so adding and removing cameras never churns processes.

Supervision: the pool pings every host each second. A host whose process died (OOM killer, a
decoder crash, its node gone) is replaced by a new one in the same group, which restarts the
cameras the pool had placed on it, as they are now (runtime adds and zones included), under their epochs: a
file goes on where its outbox says it got, a live source at its newest frame, and the incidents
the dead host left open end with ``end_reason: host restarted``. Each camera of the dead host is
reported lost at once (``on_lost``) and restored once it runs again (``on_restored``); a camera that
cannot be restarted (no node has the resources, the new host fails) is reported lost for good and
listed as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from pipeline.core.config import CameraConfig
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import CameraState, CameraStatus
from pipeline.core.metrics import WORKER_RESTARTS
from pipeline.core.redact import redact
from pipeline.events.snapshots import FrameSnapshot
from pipeline.runtime.camera import CameraSettings
from pipeline.runtime.camera_host import CameraHost
from pipeline.runtime.placement import HostPlan

log = logging.getLogger(__name__)

HOST_TIMEOUT_S = 60.0
# A new host loads what it runs first (the clip head; with placement hosts the detector and the ViT,
# an export included): the driver's patience with model workers, not a camera call's.
HOST_START_TIMEOUT_S = 300.0
SUPERVISE_EVERY_S = 1.0
PING_TIMEOUT_S = 5.0  # a host busy this long is slow, not dead: only a died actor is replaced

Group = frozenset[tuple[str, object]]


class CameraError(ValueError):
    """A camera cannot be added or removed (duplicate id, unknown id); the message says why."""


def host_group(cam: CameraConfig) -> frozenset[tuple[str, object]]:
    """Cameras of one group share hosts: the same ``ray_resources``."""
    return frozenset(cam.ray_resources.items())


def hosts_needed(cameras: Sequence[CameraConfig], cameras_per_host: int) -> int:
    """How many hosts ``cameras`` start on (each group fills hosts of ``cameras_per_host``)."""
    groups = Counter(host_group(cam) for cam in cameras)
    return sum(-(-n // cameras_per_host) for n in groups.values())


@dataclass(eq=False)
class _Host:
    group: Group
    actor: Any
    slot: int  # stable across restarts: the host's metrics key (camera-host:<slot>)


@dataclass(eq=False)
class _Placed:
    cam: CameraConfig
    host: _Host
    epoch: str


@dataclass
class _Supervision:
    on_lost: Callable[[CameraConfig, str], None]
    on_restored: Callable[[CameraConfig], None]
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class HostPool:
    """The driver's view of where each camera runs."""

    def __init__(
        self, settings: CameraSettings, plan: HostPlan, cameras_per_host: int | None, max_hosts: int | None = None
    ) -> None:
        if (cameras_per_host is None) == (max_hosts is None):
            raise ValueError("give cameras_per_host or max_hosts")
        self._settings, self._plan = settings, plan
        self._per_host, self._max_hosts = cameras_per_host, max_hosts
        self._hosts: list[_Host] = []
        self._where: dict[str, _Placed] = {}  # camera id -> where it runs
        self._failed: dict[str, CameraStatus] = {}  # cameras lost with their host and not restarted
        self._restarting: dict[str, CameraStatus] = {}  # cameras of a dead host, until the new one runs them
        self._adds: Counter[str] = Counter()  # camera id -> times added (its epoch)
        self._lock = threading.Lock()
        self._supervision: _Supervision | None = None

    @property
    def camera_ids(self) -> list[str]:
        """Every camera, those that could not be restarted after their host died included."""
        with self._lock:
            return sorted({*self._where, *self._failed})

    def actors(self) -> list[Any]:
        with self._lock:
            return [h.actor for h in sorted(self._hosts, key=lambda h: h.slot)]

    def named_actors(self) -> dict[str, Any]:
        """``camera-host:<slot>`` -> actor; a restarted host keeps its slot."""
        with self._lock:
            return {f"camera-host:{h.slot}": h.actor for h in self._hosts}

    def add(self, cam: CameraConfig) -> None:
        """Start ``cam`` on a host. Raises CameraError for a duplicate id."""
        with self._lock:
            if cam.id in self._where:
                raise CameraError(f"camera {cam.id!r} already exists")
            host, new = self._pick_host(host_group(cam))
            self._adds[cam.id] += 1
            epoch = f"{self._settings.run_id}/{cam.id}/{self._adds[cam.id]}"
            placed = self._where[cam.id] = _Placed(cam, host, epoch)
            self._failed.pop(cam.id, None)
        try:
            ray.get(host.actor.add.remote(cam, epoch), timeout=HOST_START_TIMEOUT_S if new else HOST_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            with self._lock:
                if self._where.get(cam.id) is placed:
                    del self._where[cam.id]
            raise
        self._catch_up(host, placed, cam)

    def remove(self, camera_id: str) -> CameraStatus:
        """Stop a camera; returns its final status. Raises CameraError for an unknown id. The id
        stays taken until its host has stopped the camera: adding it again meanwhile is a duplicate."""
        with self._lock:
            placed = self._where.get(camera_id)
            failed = self._failed.pop(camera_id, None)
        if placed is None:
            if failed is not None:
                return failed
            raise CameraError(f"no camera {camera_id!r}")
        try:
            status: CameraStatus | None = ray.get(placed.host.actor.remove.remote(camera_id), timeout=HOST_TIMEOUT_S)
        finally:
            with self._lock:
                if self._where.get(camera_id) is placed:
                    del self._where[camera_id]
        if status is None:
            raise CameraError(f"no camera {camera_id!r}")
        return status

    def set_plan(self, plan: HostPlan) -> None:
        """What hosts started from now on are given (a host restarted after it died included)."""
        with self._lock:
            self._plan = plan

    def analytics(self, camera_id: str) -> AnalyticsConfig | None:
        """The camera's zones and lines as the pool records them: what its host runs, and what a
        restarted host starts it with. CameraError: no such camera running."""
        with self._lock:
            return self._running(camera_id).cam.analytics

    def set_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> str | None:
        """Replace a camera's zones and lines (None: none) in the pool's record of the camera and on its
        host, which applies them before the camera's next frame. Returns None once done; where pixel
        geometry does not fit the camera's frames, the first point outside them, and nothing changes.
        CameraError: no such camera running. A host that died meanwhile, or one still starting the
        camera, starts it from the record, the change included."""
        with self._lock:
            placed = self._running(camera_id)
            before, host = placed.cam, placed.host
            placed.cam = after = before.model_copy(update={"analytics": cfg})
        try:
            problem: str | None = ray.get(host.actor.set_analytics.remote(camera_id, cfg), timeout=HOST_TIMEOUT_S)
        except ray.exceptions.RayActorError:
            return None  # the supervisor restarts the camera from the record
        except KeyError:  # not on its host: being started there (which catches up with the record), or removed
            with self._lock:
                if self._where.get(camera_id) is placed:
                    return None
            raise CameraError(f"no camera {camera_id!r}") from None
        if problem is not None:
            with self._lock:
                if placed.cam is after:
                    placed.cam = before
        return problem

    def snapshot(self, camera_id: str, timeout_s: float) -> FrameSnapshot:
        """The camera's last processed frame, drawn by its host. CameraError: no such camera running,
        or no frame of it processed yet."""
        with self._lock:
            placed = self._running(camera_id)
        snap: FrameSnapshot | None = ray.get(placed.host.actor.snapshot.remote(camera_id), timeout=timeout_s)
        if snap is None:
            raise CameraError(f"camera {camera_id!r} has no processed frame yet")
        return snap

    def _running(self, camera_id: str) -> _Placed:
        """Where a camera runs (call with the lock held). CameraError: unknown, or lost for good with its host."""
        placed = self._where.get(camera_id)
        if placed is not None:
            return placed
        failed = self._failed.get(camera_id)
        if failed is not None:
            raise CameraError(f"camera {camera_id!r} is not running ({failed.reason}); remove it and add it again")
        raise CameraError(f"no camera {camera_id!r}")

    def _catch_up(self, host: _Host, placed: _Placed, sent: CameraConfig) -> None:
        """Apply the zones set while ``host`` was starting the camera from ``sent``, an older record."""
        cam = placed.cam
        if cam is sent:
            return
        try:
            ray.get(host.actor.set_analytics.remote(cam.id, cam.analytics), timeout=HOST_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as exc:  # the supervisor deals with a dead host
            log.warning("camera %s: its zones could not be applied once it started: %s", cam.id, _short(exc))

    def statuses(self, timeout_s: float) -> list[CameraStatus]:
        """Every camera's status; a camera whose host died shows as reconnecting while a new host
        starts it, failed where it could not be restarted."""
        reported = self._gather(lambda host: host.statuses.remote(), timeout_s)
        seen = {s.camera_id for s in reported}
        with self._lock:
            lost = [s for s in [*self._failed.values(), *self._restarting.values()] if s.camera_id not in seen]
        return sorted(reported + lost, key=lambda s: s.camera_id)

    def stop_all(self, timeout_s: float = 30.0) -> list[CameraStatus]:
        self.stop_supervising()
        final = self._gather(lambda host: host.stop_all.remote(), timeout_s)
        with self._lock:
            self._where.clear()
        return sorted(final, key=lambda s: s.camera_id)

    # -- supervision ---------------------------------------------------------------------------

    def supervise(
        self, on_lost: Callable[[CameraConfig, str], None], on_restored: Callable[[CameraConfig], None]
    ) -> None:
        """Replace hosts that die, from now until ``stop_supervising``. ``on_lost(cam, reason)`` is
        called for each camera of a dead host (and again if it cannot be restarted),
        ``on_restored(cam)`` once it runs on the new host."""
        sup = self._supervision = _Supervision(on_lost, on_restored)
        sup.thread = threading.Thread(target=self._supervise, args=(sup,), name="host-supervisor", daemon=True)
        sup.thread.start()

    def stop_supervising(self) -> None:
        sup, self._supervision = self._supervision, None
        if sup is not None and sup.thread is not None:
            sup.stop.set()
            sup.thread.join(timeout=PING_TIMEOUT_S + 5)

    def _supervise(self, sup: _Supervision) -> None:
        while not sup.stop.wait(SUPERVISE_EVERY_S):
            try:
                for host, exc in self._dead_hosts():
                    if sup.stop.is_set():
                        return
                    self._replace(host, exc, sup)
            except Exception:  # the supervisor outlives anything one round runs into
                log.exception("host supervisor: a round failed")

    def _dead_hosts(self) -> list[tuple[_Host, BaseException]]:
        with self._lock:
            hosts = list(self._hosts)
        refs = {h.actor.ping.remote(): h for h in hosts}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=PING_TIMEOUT_S)
        dead: list[tuple[_Host, BaseException]] = []
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                dead.append((refs[ref], exc))
            except ray.exceptions.RayError:
                continue
        return dead

    def _replace(self, dead: _Host, exc: BaseException, sup: _Supervision) -> None:
        """A new host in ``dead``'s place, running the cameras the pool had placed on it."""
        with self._lock:
            if dead not in self._hosts:
                return
            self._hosts.remove(dead)
            cams = [p for p in self._where.values() if p.host is dead]
        WORKER_RESTARTS.labels("camera").inc()
        log.warning(
            "camera host %d died (%s); restarting its cameras: %s",
            dead.slot,
            _short(exc),
            ", ".join(p.cam.id for p in cams) or "none",
        )
        for p in cams:
            reason = f"camera host died ({_short(exc)})"
            with self._lock:
                self._restarting[p.cam.id] = _status(p.cam, CameraState.RECONNECTING, f"{reason}; restarting")
            sup.on_lost(p.cam, reason)
        missing = _missing_resources(dead.group)
        if missing and cams:  # its node is gone and no other offers what the group asks for
            why = f"no live Ray node has the resources its cameras ask for ({missing})"
            log.warning("camera host %d: not restarted: %s", dead.slot, why)
            for p in cams:
                self._give_up(p, why)
                sup.on_lost(p.cam, why)
            return
        with self._lock:
            host = self._new_host(dead.group, dead.slot)
            for p in cams:
                p.host = host
        t0 = time.monotonic()
        for p in cams:
            sent = p.cam
            try:
                ray.get(host.actor.add.remote(sent, p.epoch), timeout=HOST_START_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError, ValueError) as add_exc:
                why = f"could not restart after its camera host died: {_short(add_exc)}"
                log.warning("camera %s: %s", p.cam.id, why)
                self._give_up(p, why)
                sup.on_lost(p.cam, why)
                continue
            finally:
                with self._lock:
                    self._restarting.pop(p.cam.id, None)
            self._catch_up(host, p, sent)
            sup.on_restored(p.cam)
        if cams:
            log.info("camera host %d restarted its cameras in %.1f s", dead.slot, time.monotonic() - t0)

    def _give_up(self, placed: _Placed, reason: str) -> None:
        with self._lock:
            if self._where.get(placed.cam.id) is placed:
                del self._where[placed.cam.id]
            self._restarting.pop(placed.cam.id, None)
            self._failed[placed.cam.id] = _status(placed.cam, CameraState.FAILED, reason)

    # -- placement -----------------------------------------------------------------------------

    def _gather(self, call: Callable[[Any], Any], timeout_s: float) -> list[CameraStatus]:
        refs = [call(host) for host in self.actors()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        out: list[CameraStatus] = []
        for ref in ready:
            try:
                out.extend(ray.get(ref))
            except ray.exceptions.RayError:
                continue  # a dead host: the supervisor reports it, once
        return out

    def _pick_host(self, group: Group) -> tuple[_Host, bool]:
        """The least loaded host of ``group`` with room, or a new one; and whether it is new. With
        ``max_hosts`` a new host starts only while the group has fewer and none of its hosts is empty."""
        load = {id(h): 0 for h in self._hosts}
        for placed in self._where.values():
            load[id(placed.host)] = load.get(id(placed.host), 0) + 1
        mine = [h for h in self._hosts if h.group == group]
        if self._per_host is not None:
            mine = [h for h in mine if load[id(h)] < self._per_host]
            if mine:
                return min(mine, key=lambda h: load[id(h)]), False
        elif mine:
            least = min(mine, key=lambda h: load[id(h)])
            if load[id(least)] == 0 or len(mine) >= (self._max_hosts or 1):
                return least, False
        slots = {h.slot for h in self._hosts}
        return self._new_host(group, next(i for i in range(len(slots) + 1) if i not in slots)), True

    def _new_host(self, group: Group, slot: int) -> _Host:
        actor = (
            ray.remote(CameraHost)
            .options(
                num_cpus=0,
                max_concurrency=8,
                max_restarts=0,  # the pool restarts hosts itself, with their cameras as they are now
                scheduling_strategy="SPREAD",  # on a cluster, hosts (and their decoding) spread over the nodes
                resources={k: float(v) for k, v in group},  # type: ignore[arg-type]
            )
            .remote(self._settings, self._plan)
        )
        host = _Host(group, actor, slot)
        self._hosts.append(host)
        return host


def _status(cam: CameraConfig, state: CameraState, reason: str) -> CameraStatus:
    return CameraStatus(cam.id, cam.display_url, state, reason, 0, 0, 0, 0, 0, 0.0, 0.0, None)


def _missing_resources(group: Group) -> dict[str, float]:
    """The custom resources of ``group`` that no live node has enough of (empty: schedulable)."""
    if not group:
        return {}
    available: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return {k: float(v) for k, v in group if available.get(k, 0.0) < float(v)}  # type: ignore[arg-type]


def _short(exc: BaseException) -> str:
    """One line of a Ray error (they run to many), credentials redacted."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return redact(lines[0] if lines else type(exc).__name__)[:200]
