"""A FrameSource with a live consumer, its states, reasons and frame times recorded (tests, benchmarks)."""

from __future__ import annotations

import threading
import time

from pipeline.core.config import CameraConfig
from pipeline.core.messages import CameraState
from workers.decoder import FrameSource


class Watched:
    """A FrameSource with its states, reasons and frame times recorded."""

    def __init__(self, cfg: CameraConfig) -> None:
        self.states: list[tuple[float, CameraState, str]] = []
        self.frame_times: list[float] = []
        self.drops = 0
        self._lock = threading.Lock()
        self.source = FrameSource(cfg, self._on_state, self._on_drop, self._on_decoded)
        self._stop = threading.Event()
        self._consumer = threading.Thread(target=self._consume, daemon=True)

    def _on_state(self, state: CameraState, reason: str) -> None:
        with self._lock:
            self.states.append((time.monotonic(), state, reason))

    def _on_drop(self, reason: str) -> None:
        self.drops += 1

    def _on_decoded(self, seconds: float) -> None:
        with self._lock:
            self.frame_times.append(time.monotonic())

    def _consume(self) -> None:  # a live consumer, as the camera actor is
        while not self._stop.is_set():
            self.source.get(timeout_s=0.2)

    @property
    def state(self) -> CameraState:
        return self.states[-1][1] if self.states else CameraState.CONNECTING

    def frames_since(self, t: float) -> int:
        with self._lock:
            return sum(1 for f in self.frame_times if f > t)

    def count(self, state: CameraState) -> int:
        return sum(1 for _t, s, _r in self.states if s is state)

    def __enter__(self) -> Watched:
        self.source.start()
        self._consumer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.source.stop()
        self._consumer.join()
