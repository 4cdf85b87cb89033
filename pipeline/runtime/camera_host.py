"""The camera host actor: runs many cameras (``CameraRunner``s) in one process.

One process per camera would cost a process start (~2.7 s with torch and ultralytics imported)
and ~300 MB per camera; a host adds or removes a camera in milliseconds and shares the imports.
The driver places cameras on hosts (``ray.cameras_per_host``, grouped by ``ray_resources``), and
spreads hosts over the Ray nodes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import cv2
import psutil

from pipeline.core.config import CameraConfig, TemporalConfig, ZeroShotConfig
from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.logs import configure_logging
from pipeline.core.messages import CameraStatus
from pipeline.events.snapshots import FrameSnapshot
from pipeline.runtime.camera import CameraRunner, CameraSettings
from pipeline.runtime.clients import HostClients
from pipeline.runtime.placement import HostPlan
from workers.common import MetricsExporter, set_process_role, tune_allocator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessStats:
    """Resources of a host process (leak checks): threads, open file descriptors, resident bytes."""

    pid: int
    threads: int
    open_fds: int
    rss_bytes: int


class CameraHost(MetricsExporter):
    """Ray actor holding cameras. Threaded (max_concurrency) so control calls never wait on frames."""

    def __init__(self, settings: CameraSettings, plan: HostPlan) -> None:
        set_process_role("camera")
        tune_allocator()  # decoded frames (0.7-6 MiB each) are freed and allocated again every frame
        # Cameras run in parallel threads already; OpenCV's own pool (resizes) would only add
        # hand-offs, and its CPU would escape the cameras' step clocks.
        cv2.setNumThreads(1)
        configure_logging(logging.INFO)
        self.settings = settings
        self._cameras: dict[str, CameraRunner] = {}
        self._stopping: dict[str, threading.Event] = {}  # ids being removed: set once their stop is done
        self._lock = threading.Lock()
        self._clients = HostClients(plan)  # with placement hosts: the models, loaded here

    def ping(self) -> int:
        """The process id: the driver's supervisor checks that the host lives."""
        return os.getpid()

    def add(self, cam: CameraConfig, epoch: str = "") -> None:
        """Start a camera (``epoch``: see ``CameraRunner``). Raises ValueError if a camera with this id
        already runs here. A camera of the same id still being removed is waited for: its stop drops
        the id's metric series, which must not take the new camera's with them."""
        while True:
            with self._lock:
                if cam.id in self._cameras:
                    raise ValueError(f"camera {cam.id!r} is already running")
                stopping = self._stopping.get(cam.id)
                if stopping is None:
                    runner = CameraRunner(cam, self.settings, self._clients.for_camera(cam), epoch)
                    self._cameras[cam.id] = runner
                    break
            stopping.wait()
        runner.start()

    def remove(self, camera_id: str) -> CameraStatus | None:
        """Stop a camera (its open incidents end, its spool is flushed) and forget its metrics."""
        with self._lock:
            runner = self._cameras.pop(camera_id, None)
            if runner is None:
                return None
            stopped = self._stopping[camera_id] = threading.Event()
        try:
            return runner.stop()
        finally:
            with self._lock:
                del self._stopping[camera_id]
            stopped.set()

    def set_analytics(self, camera_id: str, cfg: AnalyticsConfig | None) -> str | None:
        """Replace a camera's zones and lines (None: none), applied before its next frame. Returns
        None once set; where pixel geometry does not fit the frames the camera decodes, the first point
        outside them, and nothing changes. KeyError: no camera of that id runs here."""
        with self._lock:
            runner = self._cameras.get(camera_id)
        if runner is None:
            raise KeyError(camera_id)
        size = runner.frame_wh
        problem = cfg.outside_frame(*size) if cfg is not None and size is not None else None
        if problem is None:
            runner.set_analytics(cfg)
        return problem

    def set_prompts(self, zs: ZeroShotConfig, head: TemporalConfig | None) -> None:
        """New ``models.zero_shot`` prompts for the models this host runs itself (``HostClients``),
        from their next batch."""
        self._clients.set_prompts(zs, head)

    def snapshot(self, camera_id: str) -> FrameSnapshot | None:
        """The camera's last processed frame, drawn (None: no such camera here, or no frame yet)."""
        with self._lock:
            runner = self._cameras.get(camera_id)
        return None if runner is None else runner.latest_snapshot()

    def camera_ids(self) -> list[str]:
        with self._lock:
            return list(self._cameras)

    def statuses(self) -> list[CameraStatus]:
        with self._lock:
            runners = list(self._cameras.values())
        return [r.status() for r in runners]

    def stop_all(self) -> list[CameraStatus]:
        with self._lock:
            ids = list(self._cameras)
        return [s for s in (self.remove(i) for i in ids) if s is not None]

    def process_stats(self) -> ProcessStats:
        proc = psutil.Process(os.getpid())
        return ProcessStats(proc.pid, proc.num_threads(), proc.num_fds(), proc.memory_info().rss)
