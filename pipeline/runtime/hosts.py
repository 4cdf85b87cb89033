"""Placement of cameras on ``CameraHost`` actors.

Cameras with the same ``ray_resources`` share hosts. Either a host takes up to
``cameras_per_host`` cameras and the next camera starts a new host, or (placement ``hosts`` with
``cameras_per_host: auto``) the cameras spread over at most ``max_hosts`` hosts of a group, the
least loaded first, so cameras added at run time start no more copies of the models than that. New hosts spread over
the Ray nodes. Hosts stay up when they empty, so adding and removing cameras never churns processes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import ray

from pipeline.core.config import CameraConfig
from pipeline.core.messages import CameraStatus
from pipeline.runtime.camera import CameraSettings
from pipeline.runtime.camera_host import CameraHost
from pipeline.runtime.placement import HostPlan

log = logging.getLogger(__name__)

HOST_TIMEOUT_S = 60.0
# A new host loads what it runs first (the clip head; with placement hosts the detector and the ViT,
# an export included): the driver's patience with model workers, not a camera call's.
HOST_START_TIMEOUT_S = 300.0


class CameraError(ValueError):
    """A camera cannot be added or removed (duplicate id, unknown id); the message says why."""


def host_group(cam: CameraConfig) -> frozenset[tuple[str, object]]:
    """Cameras of one group share hosts: the same ``ray_resources``."""
    return frozenset(cam.ray_resources.items())


def hosts_needed(cameras: Sequence[CameraConfig], cameras_per_host: int) -> int:
    """How many hosts ``cameras`` start on (each group fills hosts of ``cameras_per_host``)."""
    groups = Counter(host_group(cam) for cam in cameras)
    return sum(-(-n // cameras_per_host) for n in groups.values())


class HostPool:
    """The driver's view of where each camera runs."""

    def __init__(
        self, settings: CameraSettings, plan: HostPlan, cameras_per_host: int | None, max_hosts: int | None = None
    ) -> None:
        if (cameras_per_host is None) == (max_hosts is None):
            raise ValueError("give cameras_per_host or max_hosts")
        self._settings, self._plan = settings, plan
        self._per_host, self._max_hosts = cameras_per_host, max_hosts
        self._hosts: list[tuple[frozenset[tuple[str, object]], Any]] = []  # (placement group, actor)
        self._where: dict[str, Any] = {}  # camera id -> host actor
        self._lock = threading.Lock()

    @property
    def camera_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._where)

    def actors(self) -> list[Any]:
        with self._lock:
            return [actor for _group, actor in self._hosts]

    def add(self, cam: CameraConfig) -> None:
        """Start ``cam`` on a host. Raises CameraError for a duplicate id."""
        with self._lock:
            if cam.id in self._where:
                raise CameraError(f"camera {cam.id!r} already exists")
            host, new = self._pick_host(host_group(cam))
            self._where[cam.id] = host
        try:
            ray.get(host.add.remote(cam), timeout=HOST_START_TIMEOUT_S if new else HOST_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            with self._lock:
                self._where.pop(cam.id, None)
            raise

    def remove(self, camera_id: str) -> CameraStatus:
        """Stop a camera; returns its final status. Raises CameraError for an unknown id. The id
        stays taken until its host has stopped the camera: adding it again meanwhile is a duplicate."""
        with self._lock:
            host = self._where.get(camera_id)
        if host is None:
            raise CameraError(f"no camera {camera_id!r}")
        try:
            status: CameraStatus | None = ray.get(host.remove.remote(camera_id), timeout=HOST_TIMEOUT_S)
        finally:
            with self._lock:
                if self._where.get(camera_id) is host:
                    del self._where[camera_id]
        if status is None:
            raise CameraError(f"no camera {camera_id!r}")
        return status

    def statuses(self, timeout_s: float) -> list[CameraStatus]:
        return self._gather(lambda host: host.statuses.remote(), timeout_s)

    def stop_all(self, timeout_s: float = 30.0) -> list[CameraStatus]:
        final = self._gather(lambda host: host.stop_all.remote(), timeout_s)
        with self._lock:
            self._where.clear()
        return final

    def _gather(self, call: Callable[[Any], Any], timeout_s: float) -> list[CameraStatus]:
        refs = [call(host) for host in self.actors()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        out: list[CameraStatus] = []
        for ref in ready:
            try:
                out.extend(ray.get(ref))
            except ray.exceptions.RayError as exc:
                log.warning("a camera host did not answer: %s", exc)
        return sorted(out, key=lambda s: s.camera_id)

    def _pick_host(self, group: frozenset[tuple[str, object]]) -> tuple[Any, bool]:
        """The least loaded host of ``group`` with room, or a new one; and whether it is new. With
        ``max_hosts`` a new host starts only while the group has fewer and none of its hosts is empty."""
        load = {id(h): 0 for _g, h in self._hosts}
        for host in self._where.values():
            load[id(host)] += 1
        mine = [h for g, h in self._hosts if g == group]
        if self._per_host is not None:
            mine = [h for h in mine if load[id(h)] < self._per_host]
            if mine:
                return min(mine, key=lambda h: load[id(h)]), False
        elif mine:
            least = min(mine, key=lambda h: load[id(h)])
            if load[id(least)] == 0 or len(mine) >= (self._max_hosts or 1):
                return least, False
        host = (
            ray.remote(CameraHost)
            .options(
                num_cpus=0,
                max_concurrency=8,
                max_restarts=0,
                scheduling_strategy="SPREAD",  # on a cluster, hosts (and their decoding) spread over the nodes
                resources={k: float(v) for k, v in group},  # type: ignore[arg-type]
            )
            .remote(self._settings, self._plan)
        )
        self._hosts.append((group, host))
        return host, True
