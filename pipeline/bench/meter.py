"""The CPU time and memory of a mode's whole process tree (Ray's processes and the embedded Redis
included), sampled with psutil, by who each process is; and where the whole machine's CPUs went."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil

SAMPLE_EVERY_S = 0.5
# Ray's own processes, by what their command line starts with.
_RAY_SYSTEM = ("raylet", "gcs_server", "dashboard", "runtime_env", "log_monitor", "monitor", "ray_client")


def process_role(proc: psutil.Process, root_pid: int) -> str:
    """Who a process in a mode's tree is: the mode's own process, a Vigil actor, Ray, Redis."""
    if proc.pid == root_pid:
        return "driver"
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    if cmd.startswith("ray::"):
        actor = cmd[5:].split(".", 1)[0].split()[0]
        return {
            "CameraHost": "camera",
            "Detector": "detector",
            "Classifier": "classifier",
            "VisionWorker": "vision",
        }.get(actor, "temporal" if actor == "ClipHead" else "ray-worker-idle")
    if "redis-server" in cmd:
        return "redis"
    name = Path(cmd.split()[0]).name if cmd else proc.name()
    if any(name.startswith(r) or f"/{r}" in cmd for r in _RAY_SYSTEM) or "ray/" in cmd:
        return "ray-system"
    return "other"


class TreeMeter:
    """CPU seconds and memory of a process and all its descendants, sampled in a thread.

    CPU over the window is the sum, per process, of its last sample minus its value when the
    window opened (0 for processes started inside it). Memory is the peak of the summed RSS
    (shared pages, e.g. Ray's object store, count once per process that maps them)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._base: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._roles: dict[int, str] = {}
        self.peak_rss = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = self._t1 = 0.0
        self._machine0: Any = None  # psutil.cpu_times() of the whole machine at the window's ends
        self._machine1: Any = None
        self._open = False
        self._closed = False  # once closed, late samples (the sampler thread's last one) change nothing

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        with self._lock:
            if self._closed:
                return
            for p in procs:
                try:
                    times = p.cpu_times()
                    rss += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                # Asked every time: a Ray worker names itself (ray::Detector) only once it hosts an actor.
                self._roles[p.pid] = process_role(p, self.root.pid)
                cpu = times.user + times.system
                if self._open:
                    self._base.setdefault(p.pid, 0.0)
                    self._last[p.pid] = (self._roles[p.pid], cpu)
                else:
                    self._base[p.pid] = cpu
            if self._open:
                self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def start(self) -> None:
        self._thread.start()

    def open_window(self) -> None:
        self._sample()
        with self._lock:
            self._open, self._t0 = True, time.perf_counter()
            self._machine0 = psutil.cpu_times()
        self._sample()

    def close_window(self) -> None:
        self._sample()
        with self._lock:
            self._open, self._closed, self._t1 = False, True, time.perf_counter()
            self._machine1 = psutil.cpu_times()
        self._stop.set()

    def result(self) -> dict[str, Any]:
        wall = max(1e-9, self._t1 - self._t0)
        by_role: dict[str, float] = {}
        for pid, (role, cpu) in self._last.items():
            by_role[role] = by_role.get(role, 0.0) + max(0.0, cpu - self._base.get(pid, 0.0))
        total = sum(by_role.values())
        return {
            "cpu_percent": 100 * total / wall,
            "cpu_s": total,
            "cpu_s_by_process": dict(sorted(by_role.items())),
            "rss_bytes": self.peak_rss,
            "window_s": wall,
            "machine": self._machine(wall, total),
        }

    def _machine(self, wall: float, tree_cpu_s: float) -> dict[str, float]:
        """The whole machine over the window, in cores: what the mode's tree used, what other
        processes and the kernel used, what stayed idle and what the hypervisor took (steal)."""
        if self._machine0 is None or self._machine1 is None:
            return {}
        d = {f: getattr(self._machine1, f) - getattr(self._machine0, f) for f in self._machine1._fields}
        idle = d.get("idle", 0.0) + d.get("iowait", 0.0)
        steal = d.get("steal", 0.0)
        busy = sum(d.values()) - idle - steal - d.get("guest", 0.0) - d.get("guest_nice", 0.0)
        return {
            "cpus": psutil.cpu_count() or 0,  # /proc/stat's: every CPU, not only those the bench may use
            "busy_cores": busy / wall,
            "tree_cores": tree_cpu_s / wall,
            "outside_tree_cores": (busy - tree_cpu_s) / wall,
            "idle_cores": idle / wall,
            "steal_cores": steal / wall,
        }
