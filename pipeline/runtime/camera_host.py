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
import torch

from pipeline.core.config import CameraConfig, CameraMode
from pipeline.core.messages import CameraStatus
from pipeline.runtime.camera import CameraRunner, CameraSettings, WorkerHandles
from pipeline.runtime.coalescer import Coalescer, actor_sender
from pipeline.runtime.vision import HostVision
from workers.clip_head import TemporalHead
from workers.common import MetricsExporter, claim_cores, pin_process, set_process_role, tune_allocator

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

    def __init__(self, settings: CameraSettings, workers: WorkerHandles) -> None:
        set_process_role("camera")
        tune_allocator()  # decoded frames (0.7-6 MiB each) are freed and allocated again every frame
        # Cameras run in parallel threads already; OpenCV's own pool (resizes) would only add
        # hand-offs, and its CPU would escape the cameras' step clocks.
        cv2.setNumThreads(1)
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        self.settings, self.workers = settings, workers
        self._cameras: dict[str, CameraRunner] = {}
        self._stopping: dict[str, threading.Event] = {}  # ids being removed: set once their stop is done
        self._lock = threading.Lock()
        self._coalescer: Coalescer | None = None  # made with the first camera that uses one
        self._crop_coalescer: Coalescer | None = None  # ray.vision: hosts with models.crops
        self._clip_head: TemporalHead | None = None
        self._vision: HostVision | None = None
        if workers.host_vision is not None:  # ray.vision: hosts: the models run here, for this host's cameras
            v = workers.host_vision
            if v.pin_cores:  # before the models start threads of their own: every thread inherits it
                cores = claim_cores(v.pin_cores, wait_s=2.0)  # a host just stopped may still hold its cores
                pinned = cores is not None and pin_process(cores)
                where = f"on cores {list(cores)}" if pinned and cores else "unpinned (no cores free to claim)"
                log.info("camera host %d: %s", os.getpid(), where)
            self._vision = HostVision((v.detector, v.classifier), v.torch_threads, v.crops)
            set_process_role("camera")  # the models' constructors set their own role and OpenCV threads
            cv2.setNumThreads(1)
            if v.crops is not None:  # single crops are the items: a call takes every waiting frame's crops
                self._crop_coalescer = Coalescer((self._vision.send_crops,), v.crops.max_batch, count_calls=False)
        if workers.clip_head is not None:  # ray.clip_head: hosts: one head for this host's cameras
            torch.set_num_threads(workers.host_vision.torch_threads if workers.host_vision else 1)
            spec = workers.clip_head
            self._clip_head = TemporalHead(spec.cfg, spec.in_dim, emb_dim=spec.emb_dim, in_host=True)

    def add(self, cam: CameraConfig) -> None:
        """Start a camera. Raises ValueError if a camera with this id already runs here. A camera of
        the same id still being removed is waited for: its stop drops the id's metric series, which
        must not take the new camera's with them."""
        while True:
            with self._lock:
                if cam.id in self._cameras:
                    raise ValueError(f"camera {cam.id!r} is already running")
                stopping = self._stopping.get(cam.id)
                if stopping is None:
                    runner = CameraRunner(
                        cam,
                        self.settings,
                        self.workers,
                        self._coalescer_for(cam),
                        self._clip_head,
                        self._crop_coalescer,
                    )
                    self._cameras[cam.id] = runner
                    break
            stopping.wait()
        runner.start()

    def _coalescer_for(self, cam: CameraConfig) -> Coalescer | None:
        """The host's coalescer for a camera: every camera's with ``ray.vision: hosts`` (the models
        here take one batch at a time); with fused workers (host_calls_per_replica > 0) a file-mode
        camera's only: coalescing made `vigil bench`'s file cameras 15-20 % faster, but cost
        overloaded live cameras 5-9 % of their frames, for no latency gain (BENCHMARKS.md)."""
        w = self.workers
        if self._vision is None and (w.host_calls_per_replica <= 0 or cam.effective_mode is not CameraMode.FILE):
            return None
        if self._coalescer is None:
            if self._vision is not None:
                self._coalescer = Coalescer((self._vision.send,), w.call_max_frames)
            else:
                senders = tuple(actor_sender(d, "analyze_many") for d in w.detectors)
                self._coalescer = Coalescer(senders, w.call_max_frames, w.host_calls_per_replica, w.call_max_bytes)
        return self._coalescer

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
