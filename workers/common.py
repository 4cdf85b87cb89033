"""Helpers shared by the model workers: process settings (allocator, torch threads, device) and metric export."""

from __future__ import annotations

import ctypes
import fcntl
import functools
import logging
import os
import tempfile
import time
from pathlib import Path

from pipeline.core.metrics import MetricsReport, local_report, set_process_role

__all__ = [
    "MetricsExporter",
    "claim_cores",
    "configure_torch",
    "core_lock_dir",
    "pin_process",
    "release_free_memory",
    "set_process_role",
    "tune_allocator",
]

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
    the OS, so the next batch faults in and zeroes those pages again: on a small CPU box a sizeable
    share of the detector's CPU (docs/performance.md). Done once per process, first thing in
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


_CLAIMED: list[int] = []  # this process's core locks (file descriptors): held until it exits (the OS releases them)


def core_lock_dir() -> Path:
    """Where ``claim_cores`` keeps its lock files: ``VIGIL_CORE_LOCKS``, else a directory of this
    user's own in the temp directory (hosts coordinate per user: another user's locks are not
    readable, nor theirs to take)."""
    configured = os.environ.get("VIGIL_CORE_LOCKS")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"vigil-cores-{os.getuid()}"


def claim_cores(
    count: int, lock_dir: Path | None = None, cores: list[int] | None = None, wait_s: float = 0.0
) -> tuple[int, ...] | None:
    """Claim ``count`` cores of this machine that no other process holds through this function: the
    first free group among ``cores`` (default: the cores this process may run on) cut into groups
    of ``count``, each core held by an exclusive ``flock`` on a file per core in ``lock_dir``
    (default ``core_lock_dir()``) until the process exits, killed or not. Tries again for up to
    ``wait_s`` (a host just stopped may still be exiting). None when no group is free (more hosts
    than cores), none can exist, or the lock directory is not usable (not this user's own, a
    symlink, read-only)."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    if count <= 0 or count > len(cores):
        return None
    lock_dir = lock_dir or core_lock_dir()
    try:
        lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(lock_dir)
    except OSError as exc:
        log.warning("cannot pin camera hosts to cores: lock directory %s: %s", lock_dir, exc.strerror)
        return None
    if not os.path.isdir(lock_dir) or os.path.islink(lock_dir) or st.st_uid != os.getuid():
        log.warning("cannot pin camera hosts to cores: lock directory %s is not this user's own", lock_dir)
        return None
    deadline = time.monotonic() + wait_s
    while True:
        group = _claim_group(count, lock_dir, cores)
        if group is not None or time.monotonic() >= deadline:
            return group
        time.sleep(0.1)  # polling a lock file: there is nothing to wait on


def _claim_group(count: int, lock_dir: Path, cores: list[int]) -> tuple[int, ...] | None:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for start in range(0, len(cores) - count + 1, count):
        group, held = tuple(cores[start : start + count]), []
        for core in group:
            try:
                fd = os.open(lock_dir / f"cpu{core}.lock", flags, 0o600)
            except OSError:
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                break
            held.append(fd)
        if len(held) == count:
            _CLAIMED.extend(held)
            return group
        for fd in held:
            os.close(fd)
    return None


def pin_process(cores: tuple[int, ...]) -> bool:
    """Keep every thread of this process (and the threads they start later) on ``cores``: this
    thread first, then the others until a pass finds them all pinned (a thread may start one
    meanwhile). False where that did not succeed (threads already pinned then stay so)."""
    target = set(cores)
    try:
        os.sched_setaffinity(0, target)
        for _ in range(5):
            missed = 0
            for tid in os.listdir("/proc/self/task"):
                try:
                    if os.sched_getaffinity(int(tid)) != target:
                        os.sched_setaffinity(int(tid), target)
                        missed += 1
                except ProcessLookupError:  # a thread that ended meanwhile
                    continue
            if not missed:
                return True
    except OSError as exc:
        log.warning("cannot pin this process to cores %s: %s", sorted(target), exc.strerror or exc)
    return False


def use_half(half: bool, device: str) -> bool:
    """Whether a model configured with ``half`` runs fp16 on ``device``: on a GPU only (fp16 on a
    CPU is emulated, and slower). One rule for the detector, its exports and the ViTs."""
    return half and device != "cpu"


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Intel AMX, or AVX512-BF16 as on AMD Zen 4 and Intel
    Cooper Lake on). Elsewhere oneDNN emulates it, and bf16 runs slower than fp32."""
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


_WARNED: set[str] = set()  # what this process has already warned about (``warn_once``)


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` comes up in this process only: a model's
    precision is decided by every replica, thread and bench mode that loads it."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message, *args)


def use_bf16(cpu_precision: str, device: str, model: str) -> bool:
    """Whether a model configured with ``cpu_precision`` runs bf16 on ``device``: on a CPU with
    native bf16 only (``native_bf16``); where bf16 was asked for and the CPU lacks it, fp32, said once
    per model and process ("auto" asks for bf16 where the CPU has it: nothing to say). GPUs use
    ``half`` (``use_half``)."""
    if cpu_precision not in ("bf16", "auto") or device != "cpu":
        return False
    if native_bf16():
        return True
    if cpu_precision == "auto":
        return False
    warn_once(
        f"no native bf16: {model}",
        "%s: cpu_precision bf16 asked for, but this CPU has no native bf16 (AMX or AVX512-BF16): fp32",
        model,
    )
    return False


def precision_on(half: bool, cpu_precision: str, device: str, model: str) -> str:
    """What a model computes in on ``device``: "fp16" (``half``, a GPU), "bf16" (``cpu_precision``,
    a CPU with native bf16) or "fp32". One rule for the detector, the ViTs and the bench."""
    if use_half(half, device):
        return "fp16"
    return "bf16" if use_bf16(cpu_precision, device, model) else "fp32"


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

    def pid(self) -> int:
        """The process id: a new one means Ray restarted the actor, from its first arguments."""
        return os.getpid()
