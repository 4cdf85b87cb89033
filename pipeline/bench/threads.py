"""One thread per camera, measured: the harness the baseline and the no-Ray modes share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pipeline.bench.protocol import report
from pipeline.bench.spec import ModeSpec
from pipeline.bench.stats import quantiles_s


class Recorder:
    """Completion times and latencies of frames, from many threads."""

    def __init__(self, cameras: int) -> None:
        self._lock = threading.Lock()
        self.samples: list[tuple[float, float]] = []  # (done_at monotonic, latency_s)
        self._started: set[int] = set()
        self.all_started = threading.Event()
        self._cameras = cameras
        self.errors: list[str] = []

    def add(self, camera: int, done_at: float, latency_s: float) -> None:
        with self._lock:
            self.samples.append((done_at, latency_s))
            self._started.add(camera)
            if len(self._started) == self._cameras:
                self.all_started.set()

    def fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        self.all_started.set()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        with self._lock:
            lat = [lat for done, lat in self.samples if t0 <= done <= t1]
        return {"fps": len(lat) / (t1 - t0), "frames": len(lat), **quantiles_s(lat)}


def run_threads(spec: ModeSpec, target: Callable[[int, Recorder, threading.Event], None]) -> dict[str, Any]:
    """Start one thread per camera, measure ``spec.seconds`` once every camera has a frame out."""
    rec, stop = Recorder(spec.cameras), threading.Event()

    def guarded(i: int) -> None:
        try:
            target(i, rec, stop)
        except Exception as exc:  # reported to the parent, which prints it as one line
            rec.fail(f"camera {i}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(spec.cameras)]
    for t in threads:
        t.start()
    report(progress="loading models, first frames")
    rec.all_started.wait()
    if rec.errors:
        raise RuntimeError(rec.errors[0])
    t0 = time.perf_counter()
    report(window="start")
    wait_window(spec.seconds, lambda: rec.window(t0, time.perf_counter())["frames"])
    t1 = time.perf_counter()
    report(window="end")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return rec.window(t0, t1)


def wait_window(seconds: float, frames: Callable[[], int]) -> None:
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        time.sleep(min(0.5, seconds - elapsed))
        report(progress=f"{frames()} frames", fraction=min(1.0, (time.perf_counter() - t0) / seconds))
