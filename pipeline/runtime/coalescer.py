"""Call coalescing in a camera host (``ray.host_calls_per_replica``): one actor call carries the
frames that several of the host's cameras have ready.

With placement fused and no coalescing a camera makes one actor call per frame, and every call
costs CPU in three places: the host submitting it and fetching its result, the worker dispatching
it, and Ray's own processes. On a CPU box that is the largest part of the orchestration
(docs/performance.md). The
coalescer keeps at most ``calls_per_replica`` calls from this host in flight to each replica;
frames that arrive meanwhile wait here and leave together in the next call. Under load calls carry
several frames; with light load a frame leaves at once, because a replica is free. The worker's own
batcher still merges calls from other hosts into its forward passes.

Ray has no caller-side coalescing of actor calls (``serve.batch`` batches on the server side, which
the workers' ``Batcher`` already does), hence this module. A call's result is fetched once, by
Ray's completion callback (``ObjectRef.future()``), and shared by the frames it carried.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pipeline.core.metrics import CALL_FRAMES, StepClock


class PendingResult:
    """One frame's place in a coalesced call; ``get`` waits for the call and returns this frame's result."""

    def __init__(self) -> None:
        self._dispatched = threading.Event()
        self._future: Future[list[Any]] | None = None
        self._index = 0

    def _assign(self, future: Future[list[Any]], index: int) -> None:
        self._future, self._index = future, index
        self._dispatched.set()

    def get(self, timeout_s: float) -> Any:
        """The frame's result; raises the call's error (a dead worker: a RayError) or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        if not self._dispatched.wait(timeout_s):
            raise TimeoutError(f"frame not sent to a worker within {timeout_s:.0f} s")
        assert self._future is not None
        return self._future.result(timeout=max(0.0, deadline - time.monotonic()))[self._index]


Send = Callable[[list[Any]], "Future[list[Any]]"]
"""Starts one call on a replica: its frames in, a future of their results (in order) out."""


def actor_sender(handle: Any, method: str) -> Send:
    """A ``Send`` for a Ray actor replica: ``handle.method.remote(frames)``, its result fetched once
    by Ray's completion callback."""
    remote_method = getattr(handle, method)
    return lambda items: remote_method.remote(items).future()


class Coalescer:
    """Sends frames to ``replicas`` (one ``Send`` each: a Ray actor's method, see ``actor_sender``,
    or a model in this process, ``pipeline.runtime.vision.HostModels``), several per call.

    ``max_frames`` caps a call (the worker's max batch) and ``max_bytes`` its frames' bytes (Ray's
    inline-argument size: a bigger call would go through the object store); ``calls_per_replica``
    caps the calls this host has in flight to each replica. Frames leave in the order they were
    submitted. ``count_calls``: record each call's size in ``vigil_call_frames`` (off for crops:
    ``vigil_batch_size{model="crops"}`` has them). A call unanswered after ``stale_after_s`` (a
    hung worker) stops counting, so one stuck replica does not hold back the frames it would have
    been sent.
    """

    def __init__(
        self,
        replicas: tuple[Send, ...],
        max_frames: int,
        calls_per_replica: int = 1,
        max_bytes: int | None = None,
        stale_after_s: float = 60.0,
        count_calls: bool = True,
    ) -> None:
        if not replicas or max_frames < 1 or calls_per_replica < 1:
            raise ValueError("a coalescer needs replicas, max_frames >= 1 and calls_per_replica >= 1")
        self._senders = replicas
        self._max_frames, self._per_replica, self._max_bytes = max_frames, calls_per_replica, max_bytes
        self._stale_after_s = stale_after_s
        self._count_calls = count_calls  # vigil_call_frames (frames; a crop coalescer's calls are not)
        self._calls: dict[int, tuple[int, float]] = {}  # call id -> (replica, dispatched at), unanswered
        self._call_ids = itertools.count()
        self._waiting: deque[tuple[Any, PendingResult]] = deque()
        self._cond = threading.Condition()
        self._turn = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="coalescer", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> PendingResult:
        return self.submit_many([item])[0]

    def submit_many(self, items: list[Any]) -> list[PendingResult]:
        """Queue several items at once: none leaves before the others are queued (a frame's crops
        share a call rather than the first going alone)."""
        slots = [PendingResult() for _ in items]
        with self._cond:
            if self._closed:
                raise RuntimeError("coalescer closed")
            self._waiting.extend(zip(items, slots, strict=True))
            self._cond.notify()
        return slots

    def close(self) -> None:
        """Stop dispatching; frames still waiting get an error (their cameras count them as lost)."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._cond.notify()
        failed: Future[list[Any]] = Future()
        failed.set_exception(RuntimeError("camera host stopping"))
        for _, slot in waiting:
            slot._assign(failed, 0)
        self._thread.join(timeout=5)

    def _free_replica(self) -> int | None:
        """The replica with the fewest calls in flight (ties in turn), if it can take another."""
        n = len(self._senders)
        busy = [0] * n
        recent = time.monotonic() - self._stale_after_s
        for replica, dispatched_at in self._calls.values():
            if dispatched_at > recent:
                busy[replica] += 1
        start = next(self._turn)
        best = min(range(n), key=lambda i: (busy[i], (i - start) % n))
        return best if busy[best] < self._per_replica else None

    def _run(self) -> None:
        clock = StepClock()  # this thread's CPU: vigil_camera_cpu_seconds{step="coalesce"}
        while True:
            with self._cond:
                replica = None
                while not self._closed and (not self._waiting or (replica := self._free_replica()) is None):
                    self._cond.wait(timeout=1.0 if self._waiting else None)  # a call may go stale
                if self._closed or replica is None:
                    return
                batch = self._take()
                call = next(self._call_ids)
                self._calls[call] = (replica, time.monotonic())
            if self._count_calls:
                CALL_FRAMES.observe(len(batch))
            try:
                future: Future[list[Any]] = self._senders[replica]([item for item, _ in batch])
            except Exception as exc:  # the call could not even be submitted
                future = Future()
                future.set_exception(exc)
            future.add_done_callback(functools.partial(self._done, call))
            for i, (_, slot) in enumerate(batch):
                slot._assign(future, i)
            clock.lap("coalesce")

    def _take(self) -> list[tuple[Any, PendingResult]]:
        """The oldest waiting frames that fit in one call (at least one)."""
        batch = [self._waiting.popleft()]
        size = _nbytes(batch[0][0])
        while self._waiting and len(batch) < self._max_frames:
            size += _nbytes(self._waiting[0][0])
            if self._max_bytes is not None and size > self._max_bytes:
                break
            batch.append(self._waiting.popleft())
        return batch

    def _done(self, call: int, _future: Future[list[Any]]) -> None:
        with self._cond:
            self._calls.pop(call, None)
            self._cond.notify()


def _nbytes(item: Any) -> int:
    return int(getattr(item, "nbytes", 0))
