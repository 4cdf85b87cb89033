"""Dynamic batching inside a model worker: calls from many cameras become one forward pass.

Camera hosts call ``detect(frame)`` concurrently (the worker is a threaded Ray actor); each call
queues its frame and blocks. One thread takes the first waiting frame, adds whatever else arrives
within ``max_wait_s`` (up to ``max_batch``), runs the model once and hands every caller its own
result. Written here rather than with Ray Serve's ``@serve.batch`` because Vigil's workers are
plain actors called with object refs (no HTTP ingress, no Serve controller to run); the logic is
the same: a size cap and a wait cap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs ``fn(list[T]) -> list[R]`` on batches of items submitted from many threads."""

    def __init__(self, fn: Callable[[list[T]], list[R]], max_batch: int, max_wait_s: float, name: str = "batcher"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fn, self.max_batch, self.max_wait_s = fn, max_batch, max_wait_s
        self._queue: queue.Queue[tuple[T, Future[R], bool]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> R:
        """Queue ``item`` and block until its result (the batch's exception is raised here too)."""
        return self.submit_many([item])[0]

    def submit_many(self, items: list[T], wait: bool = True) -> list[R]:
        """Queue several items at once (they may share batches with anyone's) and wait for all.

        ``wait=False``: the items are a batch already (a camera host coalesced them while the
        previous call ran), so a batch they start leaves with whatever else is queued at that
        moment instead of waiting ``max_wait_s`` for more."""
        futures: list[Future[R]] = []
        for item in items:
            future: Future[R] = Future()
            self._queue.put((item, future, wait))
            futures.append(future)
        return [f.result() for f in futures]

    def _collect(self) -> list[tuple[T, Future[R]]]:
        item, future, wait = self._queue.get()
        batch = [(item, future)]
        deadline = time.monotonic() + (self.max_wait_s if wait else 0.0)
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item, future, _ = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append((item, future))
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            try:
                results = self._fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
            except Exception as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
