"""Soak: does memory stay flat on a long run? Per-process memory slopes and Redis against its budget.

    .venv/bin/python -m benchmarks.soak [--cameras 2] [--minutes 60] [--warmup 10] [--interval 30] \\
        [--config configs/demo.yaml] [--json OUT]

Runs ``vigil demo`` (the demo cameras, or ``--cameras N`` copies of them) for ``--minutes`` against a
private redis-server started here, and every ``--interval`` seconds samples the resident memory of
every process of the run (the driver, Ray's processes and actors, redis-server), Redis's
``used_memory``, and the bytes of Vigil's keys (``MEMORY USAGE`` of every ``vigil:*`` key: the
budget's snapshots, de-duplication keys and their index, and the streams apart). After the warm-up it
prints each process's memory slope in MiB per hour (least squares over the samples), and whether the
keys under ``redis.memory_budget_mb`` stayed within it. Target: after the first ten minutes every
process grows at most 5 MiB/hour (``--max-slope``) and Redis stays within the budget. Exits 1 when a
target is missed. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml

from pipeline.events.budget import BYTES_KEY, INDEXES, tracked_bytes
from pipeline.runtime.redis_server import EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]
MB = 2**20  # figures in MiB, as Redis and redis.memory_budget_mb count them
STREAMS = "vigil:events"


@dataclass
class Sample:
    """One round of measurements, ``t_s`` seconds after the run started."""

    t_s: float
    rss_mb: dict[str, float]
    used_memory_mb: float
    budget_keys_mb: float  # MEMORY USAGE of snapshots, de-duplication keys and the budget's index
    tracked_mb: float  # what the budget counts (pipeline.events.budget)
    stream_mb: float
    keys: dict[str, int]
    events: int


@dataclass
class Report:
    cameras: int
    minutes: float
    warmup_minutes: float
    budget_mb: float
    samples: list[Sample] = field(default_factory=list)
    slopes_mb_per_h: dict[str, float] = field(default_factory=dict)
    max_budget_keys_mb: float = 0.0
    within_budget: bool = True
    flat: bool = True


def soak_config(base: Path, cameras: int, redis_url: str, spool: Path, redis_keys: dict[str, int]) -> dict[str, Any]:
    """``base`` (unsubstituted) with ``cameras`` cameras (its own, then copies with new ids), the given
    Redis and ``redis`` settings, a fresh spool and metrics on a free port."""
    raw = yaml.safe_load(base.read_text())
    own = raw["cameras"]
    raw["cameras"] = [
        {**own[i % len(own)], "id": f"{own[i % len(own)]['id']}{i // len(own) or ''}"} for i in range(cameras)
    ]
    raw["redis"] = {**(raw.get("redis") or {}), **redis_keys, "url": redis_url}
    raw.setdefault("events", {})["spool"] = {"dir": str(spool)}
    raw.setdefault("metrics", {})["port"] = 0
    return dict(raw)


def role(proc: psutil.Process) -> str:
    """A stable name for a process of the run: ``gcs_server``, ``ray::CameraHost``, ``driver``, ..."""
    name = proc.name()
    if name.startswith("ray::") or name in ("gcs_server", "raylet", "redis-server"):
        return name
    cmd = proc.cmdline()
    if any("pipeline.cli.app" in c for c in cmd):
        return "driver"
    for c in cmd:
        if "dashboard" in c or "runtime_env" in c or "log_monitor" in c or "monitor.py" in c:
            return Path(c).stem
    return name


def processes(root: psutil.Process, redis_pid: int) -> dict[str, float]:
    """Resident MB of ``root``, its descendants and redis-server, keyed ``role[pid]``."""
    out: dict[str, float] = {}
    procs = [root, *root.children(recursive=True)]
    with contextlib.suppress(psutil.NoSuchProcess):
        procs.append(psutil.Process(redis_pid))
    for p in procs:
        try:
            out[f"{role(p)}[{p.pid}]"] = p.memory_info().rss / MB
        except psutil.Error:
            continue
    return out


def redis_figures(client: redis.Redis) -> tuple[float, float, float, dict[str, int], int]:
    """used_memory, bytes of the budget's keys, bytes of the streams (MB), key counts by kind, events."""
    used = int(client.info("memory")["used_memory"])
    kinds = {"snapshot": 0, "seen": 0, "stream": 0, "other": 0}
    budget = stream = 0
    keys = [k.decode() for k in client.scan_iter("vigil:*", count=1000)]
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    for name, size in zip(keys, pipe.execute(), strict=True):
        kind = key_kind(name)
        kinds[kind] += 1
        if kind == "stream":
            stream += int(size or 0)
        elif kind != "other" or name in (BYTES_KEY, *INDEXES.values()):
            budget += int(size or 0)
    events = int(client.xlen(STREAMS)) if client.exists(STREAMS) else 0
    return used / MB, budget / MB, stream / MB, kinds, events


def key_kind(name: str) -> str:
    if name.startswith("vigil:events") or name == "vigil:status":
        return "stream"
    if name.startswith("vigil:snapshot:"):
        return "snapshot"
    return "seen" if name.startswith("vigil:seen:") else "other"


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, MB)`` points, in MB per hour."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return 3600.0 * cov / var if var else 0.0


def analyse(report: Report, max_slope: float) -> None:
    after = [s for s in report.samples if s.t_s >= report.warmup_minutes * 60]
    series: dict[str, list[tuple[float, float]]] = {}
    for s in after:
        for proc, mb in s.rss_mb.items():
            series.setdefault(proc, []).append((s.t_s, mb))
    report.slopes_mb_per_h = {p: slope_per_hour(pts) for p, pts in series.items() if len(pts) >= 3}
    report.max_budget_keys_mb = max((s.budget_keys_mb for s in report.samples), default=0.0)
    report.within_budget = report.max_budget_keys_mb <= report.budget_mb
    report.flat = bool(report.slopes_mb_per_h) and all(v <= max_slope for v in report.slopes_mb_per_h.values())


def print_report(report: Report, max_slope: float) -> None:
    last = report.samples[-1]
    final = {p: mb for s in report.samples for p, mb in s.rss_mb.items()}  # each process's last sample
    print(f"{report.cameras} cameras, {report.minutes:g} min, slopes after {report.warmup_minutes:g} min of warm-up")
    print(f"{'process':40} {'RSS at end MiB':>14} {'MiB/hour':>11}")
    for proc, slope in sorted(report.slopes_mb_per_h.items()):
        mark = "" if slope <= max_slope else "  over"
        print(f"{proc:40} {final[proc]:14.1f} {slope:11.1f}{mark}")
    print(
        f"redis used_memory {last.used_memory_mb:.1f} MiB; Vigil's budgeted keys {last.budget_keys_mb:.2f} MiB "
        f"(tracked {last.tracked_mb:.2f}, max {report.max_budget_keys_mb:.2f}, budget {report.budget_mb:g}); "
        f"streams {last.stream_mb:.2f} MiB; keys {last.keys}; {last.events} events in vigil:events"
    )
    print(f"every process within {max_slope:g} MiB/hour: {'yes' if report.flat else 'NO'}")
    print(f"Redis within the budget: {'yes' if report.within_budget else 'NO'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--cameras", type=int, default=None, help="default: the config's cameras")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0, help="minutes left out of the slopes")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--max-slope", type=float, default=5.0, help="MB per hour a process may grow")
    parser.add_argument("--memory-budget-mb", type=int, default=None, help="redis.memory_budget_mb for the run")
    parser.add_argument("--stream-maxlen", type=int, default=None, help="redis.stream_maxlen for the run")
    parser.add_argument("--json", type=Path, default=None, help="write every sample and the figures here")
    args = parser.parse_args()
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")
    raw_cams = yaml.safe_load(args.config.read_text()).get("cameras") or []
    cameras = args.cameras or len(raw_cams)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        redis_keys = {"memory_budget_mb": args.memory_budget_mb, "stream_maxlen": args.stream_maxlen}
        cfg = soak_config(
            args.config, cameras, server.url, Path(tmp) / "spool", {k: v for k, v in redis_keys.items() if v}
        )
        budget_mb = float((cfg.get("redis") or {}).get("memory_budget_mb", _default_budget_mb()))
        cfg_path = Path(tmp) / "soak.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        report = Report(cameras, args.minutes, args.warmup, budget_mb)
        run(report, cfg_path, server, args)
    analyse(report, args.max_slope)
    print_report(report, args.max_slope)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=1))
    return 0 if report.flat and report.within_budget else 1


def _default_budget_mb() -> int:
    from pipeline.core.config import RedisConfig

    return int(RedisConfig.model_fields["memory_budget_mb"].default)


def run(report: Report, cfg_path: Path, server: EmbeddedRedis, args: argparse.Namespace) -> None:
    """Run the pipeline and sample it until it ends; the samples go into ``report``."""
    cmd = [sys.executable, "-m", "pipeline.cli.app", "demo", "--config", str(cfg_path), "--no-view"]
    cmd += ["--metrics-port", "0"]  # stopped here after --minutes: no sample sees it shutting down
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    log = cfg_path.with_name("vigil.log")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    client = redis.Redis.from_url(server.url)
    redis_pid = int(client.info("server")["process_id"])
    t0 = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - t0 < args.minutes * 60:
            t = time.monotonic() - t0
            used, budget, stream, kinds, events = redis_figures(client)
            tracked = sum(tracked_bytes(client).values()) / MB
            report.samples.append(Sample(t, processes(root, redis_pid), used, budget, tracked, stream, kinds, events))
            print(
                f"{t / 60:5.1f} min  redis {used:6.1f} MiB  budgeted keys {budget:6.2f} MiB  "
                f"streams {stream:6.2f} MiB  events {events}",
                flush=True,
            )
            deadline = min(t0 + t + args.interval, t0 + args.minutes * 60)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(1.0)
    finally:
        failed = proc.poll()
        proc.send_signal(signal.SIGINT)  # vigil stops its cameras and Ray, as on Ctrl-C
        proc.wait(timeout=180)
        client.close()
    if failed is not None or len(report.samples) < 2:
        sys.exit(f"the run failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")


if __name__ == "__main__":
    sys.exit(main())
