"""Percentiles and summaries of latency samples (seconds in, milliseconds out)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float, *, ordered: bool = False) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None without samples."""
    if not samples:
        return None
    values = samples if ordered else sorted(samples)
    rank = (len(values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return values[low] + (values[high] - values[low]) * (rank - low)


def summary_ms(samples: Sequence[float]) -> dict:
    """count, p50, p90, p99 and max of samples in seconds, as milliseconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "count": len(samples),
        "p50": ms(percentile(samples, 50)),
        "p90": ms(percentile(samples, 90)),
        "p99": ms(percentile(samples, 99)),
        "max": ms(max(samples) if samples else None),
    }


def quantiles_ms(samples: Sequence[float], steps: int = 200) -> list[float]:
    """The samples' distribution in steps + 1 evenly spaced percentiles, in milliseconds (for plots)."""
    if not samples:
        return []
    ordered = sorted(samples)
    return [round(percentile(ordered, 100 * step / steps, ordered=True) * 1000, 3) for step in range(steps + 1)]
