"""Figures ``vigil bench`` derives from samples: latency quantiles."""

from __future__ import annotations

import statistics


def quantiles_s(samples: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of latency samples in seconds (None without samples)."""
    if len(samples) < 2:
        value = samples[0] if samples else None
        return {"latency_p50_s": value, "latency_p95_s": value, "latency_p99_s": value}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"latency_p50_s": cuts[49], "latency_p95_s": cuts[94], "latency_p99_s": cuts[98]}
