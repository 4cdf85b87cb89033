"""The metric series one camera updates every frame, made once when it starts, and its rate meters."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from pipeline.core.messages import CameraState
from pipeline.core.metrics import (
    CROP_FAILURES,
    E2E_LATENCY,
    EVENTS_PUBLISHED,
    FRAMES_DECODED,
    FRAMES_DROPPED,
    FRAMES_PROCESSED,
    INPUT_FPS,
    PROCESSED_FPS,
    QUEUE_DEPTH,
    STAGE_LATENCY,
    STREAM_RECONNECTS,
    STREAM_STATE,
    STREAM_UP,
)


def set_stream_state(camera_id: str, state: CameraState) -> None:
    """``vigil_stream_state`` (1 for ``state``, 0 for the others) and ``vigil_stream_up`` of a camera."""
    for s in CameraState:
        STREAM_STATE.labels(camera_id, s.value).set(1.0 if s is state else 0.0)
    STREAM_UP.labels(camera_id).set(1.0 if state is CameraState.STREAMING else 0.0)


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return len(self._times) / self._window_s

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()


@dataclass(frozen=True)
class CameraSeries:
    """The metric series a camera updates every frame (or may: crop failures, reconnects). A ``labels()``
    lookup per use costs more than the update, so they are looked up once."""

    decoded: Counter
    processed: Counter
    e2e: Histogram
    input_fps: Gauge
    processed_fps: Gauge
    decode_queue: Gauge
    decode_s: Histogram
    publish_s: Histogram
    crop_failures: Counter
    reconnects: Counter  # one per attempt to reopen a lost or failed source

    @classmethod
    def create(cls, cam: str) -> CameraSeries:
        """This camera's series, created at zero so dashboards and rates see them before the first event."""
        series = cls(
            decoded=FRAMES_DECODED.labels(cam),
            processed=FRAMES_PROCESSED.labels(cam),
            e2e=E2E_LATENCY.labels(cam),
            input_fps=INPUT_FPS.labels(cam),
            processed_fps=PROCESSED_FPS.labels(cam),
            decode_queue=QUEUE_DEPTH.labels(cam, "decode"),
            decode_s=STAGE_LATENCY.labels("decode"),
            publish_s=STAGE_LATENCY.labels("publish"),
            crop_failures=CROP_FAILURES.labels(cam),
            reconnects=STREAM_RECONNECTS.labels(cam),
        )
        for reason in ("stale", "fps_cap", "worker_error", "motion_skip"):
            FRAMES_DROPPED.labels(cam, reason)
        for kind in ("object", "clip"):
            EVENTS_PUBLISHED.labels(cam, kind)
        series.decode_queue.set(0)
        return series
