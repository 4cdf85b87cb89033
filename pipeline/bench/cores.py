"""The cores ``vigil bench`` may use, and work started on several of them at once, each in a process
of its own (the limit's one process per core, ``pipeline.bench.limit``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

BARRIER_TIMEOUT_S = 600.0


def usable_cores() -> int:
    """CPUs this process may run on: its affinity where the OS keeps one (Linux), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _collect(what: str, procs: list[Any], cores: list[int | None], barrier: Any, results: Any) -> list[dict[str, Any]]:
    """Every process's result; a process that died without one (killed, out of memory) ends the
    wait at once, with the others released from the barrier."""
    import queue

    outs: list[dict[str, Any]] = []
    deadline = time.monotonic() + 4 * BARRIER_TIMEOUT_S
    while len(outs) < len(procs):
        try:
            outs.append(results.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        dead = [(c, p.exitcode) for c, p in zip(cores, procs, strict=True) if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            barrier.abort()
            why = f"the process on core {dead[0][0]} ended with code {dead[0][1]}" if dead else "timed out"
            raise RuntimeError(f"{what}: {why}")
        if all(p.exitcode == 0 for p in procs):  # all gone, and what they sent is read
            raise RuntimeError(f"{what}: a process ended without a result")
    return outs


def run_on_cores(
    what: str, target: Callable[..., None], args: tuple[Any, ...], cores: list[int | None]
) -> list[dict[str, Any]]:
    """``target(*args, core, barrier, results)`` in a spawned process per entry of ``cores`` (torch
    may be loaded here already: no fork), all at once; each puts one dict on ``results``, or
    ``{"error": ...}`` after aborting ``barrier``. Returns the dicts; raises RuntimeError on an
    error, the real one before the broken barrier it left the others."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(cores)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, c, barrier, results)) for c in cores]
    for proc in procs:
        proc.start()
    try:
        outs = _collect(what, procs, cores, barrier, results)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
    errors = sorted((o["error"] for o in outs if "error" in o), key=lambda e: e.startswith("BrokenBarrierError"))
    if errors:
        raise RuntimeError(f"{what}: {errors[0]}")
    return outs
