"""Helpers shared by the model workers: process settings (allocator, torch threads, device) and metric export."""

from __future__ import annotations

import ctypes
import functools
import logging
import os

from pipeline.metrics import MetricsReport, local_report, set_process_role

__all__ = ["MetricsExporter", "configure_torch", "release_free_memory", "set_process_role", "tune_allocator"]

log = logging.getLogger(__name__)

# glibc mallopt() parameters (malloc.h) and the values Vigil sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest: buffers up to 32 MiB come from the heap
TRIM_THRESHOLD_BYTES = 128 << 20  # free heap kept for the next batch before it goes back to the OS
_USER_MALLOC_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_ARENA_MAX",
)


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc's malloc that serves allocations (not musl, macOS,
    or a jemalloc/tcmalloc put in front of it with LD_PRELOAD)."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload or not hasattr(os, "confstr"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)  # the symbols already loaded: libc's own
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    except (OSError, ValueError, AttributeError):
        return None
    return libc


@functools.cache
def _tuned_libc() -> ctypes.CDLL | None:
    """Tunes the allocator, once per process; glibc when the tuning is in effect (``tune_allocator``)."""
    user_set = any(k in os.environ for k in _USER_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
    libc = None if os.environ.get("VIGIL_TUNE_MALLOC", "1") == "0" or user_set else _glibc()
    if libc is None:
        return None
    if not (
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    ):
        log.warning("could not tune the allocator (mallopt refused); models may run slower on the CPU")
        return None
    return libc


def tune_allocator() -> bool:
    """Keep the buffers that every batch frees and allocates again (decoded frames, activations,
    pre-processed tensors: 0.1-10 MiB each) in the heap instead of fresh pages from the kernel.

    glibc serves an allocation above its mmap threshold (128 KiB at first, raised as big blocks are
    freed) with a new mmap and returns freed memory at the heap's top above its trim threshold to
    the OS, so the next batch faults in and zeroes those pages again: on the 2-core bench machine
    that was 20-25 % of the detector's CPU (BENCHMARKS.md). Done once per process, first thing in
    every Vigil process that decodes or runs models. Left alone where it would not apply or the
    user chose: not glibc (musl, macOS), ``VIGIL_TUNE_MALLOC=0``, or glibc's own knobs set
    (``MALLOC_MMAP_THRESHOLD_`` and co., ``GLIBC_TUNABLES=glibc.malloc.*``). The price: up to
    ``TRIM_THRESHOLD_BYTES`` of free heap per arena stays resident, and a small long-lived block
    can pin freed big ones below it; model constructors hand what loading freed back
    (``release_free_memory``). Returns whether the tuning is in effect."""
    return _tuned_libc() is not None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc ``malloc_trim``): after loading models,
    whose checkpoint copies are freed at once and which the tuned trim threshold would keep."""
    libc = _tuned_libc()
    if libc is not None:
        libc.malloc_trim(0)


def configure_torch(threads: int, cpu: bool = False) -> str:
    """Set torch's (and OpenCV's, which pre-processes) CPU threads and return the device to run on
    ("cuda:0" when one is visible, unless ``cpu``). Tunes the allocator first (``tune_allocator``)."""
    tune_allocator()
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return "cuda:0" if not cpu and torch.cuda.is_available() else "cpu"


class MetricsExporter:
    """Mixin for Ray actors: lets the driver's /metrics endpoint pull this process's metrics.
    Subclasses call ``set_process_role`` first thing in ``__init__``."""

    def collect_metrics(self) -> MetricsReport:
        return local_report()
