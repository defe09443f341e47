"""Latency summaries: median / p90 / p99 of repeated timings, in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """{"n", "median_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms"} of timings in ms."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return {
        "n": int(a.size),
        "median_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(a.mean()), 3),
        "min_ms": round(float(a.min()), 3),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)
