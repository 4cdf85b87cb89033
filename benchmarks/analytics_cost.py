"""CPU per frame of the track analytics (zones, lines, dwell, speed), beside the same checks made
one library call per object and shape.

    .venv/bin/python -m benchmarks.analytics_cost [--tracks 20] [--zones 10] [--lines 5] [--frames 5000]

One camera's worth of tracks (people walking across a 1280x720 picture on smooth paths, leaving and
new ones coming in, each box jittering by a pixel or two) goes through:

- ``vigil``: ``workers.analytics.TrackAnalytics`` with ``--zones`` zones (each with a dwell
  threshold), ``--lines`` lines and a speed limit: every check of every object at once in numpy;
- ``per call``: the baseline a first version would write, shapely's ``contains`` for every object
  and zone and ``intersects`` of each object's last step with every line, per frame (zone and line
  tests only: no inertia, hysteresis, dwell or speed).

Prints CPU time per frame (thread CPU, median and p95) as a Markdown table (docs/performance.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from pipeline.core.config.analytics import AnalyticsConfig
from pipeline.core.messages import Detections
from workers.analytics import TrackAnalytics

W, H, FPS = 1280, 720, 10.0


def geometry(zones: int, lines: int, speed_limit: bool = True) -> dict[str, Any]:
    """``zones`` quadrilaterals in a grid over the lower two thirds, ``lines`` lines across it."""
    cols = max(1, int(np.ceil(np.sqrt(zones))))
    rows = int(np.ceil(zones / cols))
    out_zones = []
    for k in range(zones):
        r, c = divmod(k, cols)
        x0, y0 = 0.05 + 0.9 * c / cols, 0.35 + 0.6 * r / rows
        x1, y1 = x0 + 0.9 / cols * 0.8, y0 + 0.6 / rows * 0.8
        out_zones.append(
            {"name": f"z{k}", "polygon": [[x0, y0], [x1, y0 + 0.02], [x1, y1], [x0 + 0.02, y1]], "dwell_s": 20}
        )
    out_lines = [
        {"name": f"l{k}", "points": [[0.1 + 0.8 * (k + 0.5) / lines, 0.3], [0.12 + 0.8 * (k + 0.5) / lines, 1.0]]}
        for k in range(lines)
    ]
    return {"zones": out_zones, "lines": out_lines, "speed": {"limit": 300.0} if speed_limit else None}


def frames(tracks: int, n: int, seed: int = 0) -> list[Detections]:
    """``n`` frames of ``tracks`` people walking across the picture; one that leaves is replaced."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0.35 * H], [W, H], (tracks, 2))
    vel = rng.uniform(20, 90, tracks) * rng.choice([-1, 1], tracks) / FPS
    ids = np.arange(tracks, dtype=np.int64)
    next_id = tracks
    out = []
    for _ in range(n):
        pos[:, 0] += vel
        gone = (pos[:, 0] < -20) | (pos[:, 0] > W + 20)
        for i in np.flatnonzero(gone):
            pos[i] = [0 if vel[i] > 0 else W, rng.uniform(0.35 * H, H)]
            ids[i], next_id = next_id, next_id + 1
        foot = pos + rng.normal(0, 1.0, pos.shape)
        xyxy = np.column_stack([foot[:, 0] - 15, foot[:, 1] - 90, foot[:, 0] + 15, foot[:, 1]]).astype(np.float32)
        out.append(
            Detections(xyxy, np.full(tracks, 0.9, np.float32), np.zeros(tracks, np.int64), ids.copy(), ("person",))
        )
    return out


def run_vigil(cfg: AnalyticsConfig, dets: list[Detections]) -> list[float]:
    stage = TrackAnalytics(cfg, FPS)
    costs = []
    for f, det in enumerate(dets):
        t0 = time.thread_time()
        stage.update(f, f / FPS, det, (W, H))
        costs.append(time.thread_time() - t0)
    return costs


def run_per_call(cfg: AnalyticsConfig, dets: list[Detections]) -> list[float]:
    from shapely.geometry import LineString, Point, Polygon

    scale = np.array([W, H])
    polys = [Polygon(np.asarray(z.polygon) * scale) for z in cfg.zones]
    lines = [LineString(np.asarray(ln.points) * scale) for ln in cfg.lines]
    last: dict[int, tuple[float, float]] = {}
    costs = []
    for det in dets:
        t0 = time.thread_time()
        inside, crossed = 0, 0
        for (x1, _y1, x2, y2), tid in zip(det.xyxy.tolist(), det.tracker_id.tolist(), strict=True):
            anchor = ((x1 + x2) / 2, y2)
            point = Point(anchor)
            inside += sum(p.contains(point) for p in polys)
            prev = last.get(tid)
            if prev is not None:
                step = LineString([prev, anchor])
                crossed += sum(step.intersects(ln) for ln in lines)
            last[tid] = anchor
        costs.append(time.thread_time() - t0)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--no-speed-limit", action="store_true", help="Leave the speed limit out")
    args = parser.parse_args()
    cfg = AnalyticsConfig.model_validate(geometry(args.zones, args.lines, not args.no_speed_limit))
    dets = frames(args.tracks, args.frames)
    run_vigil(cfg, dets[:200])  # warm up numpy's and shapely's first calls
    results = {"vigil": run_vigil(cfg, dets), "per call": run_per_call(cfg, dets)}
    print(f"{args.tracks} tracks, {args.zones} zones, {args.lines} lines, {args.frames} frames of {W}x{H}\n")
    print("| analytics | CPU per frame, median | p95 |")
    print("|---|---|---|")
    for name, costs in results.items():
        ms = np.asarray(costs) * 1000
        print(f"| {name} | {np.median(ms):.3f} ms | {np.percentile(ms, 95):.3f} ms |")


if __name__ == "__main__":
    main()
