"""Latency histograms: the buckets the store's counters and Prometheus share, and quantiles read from them."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Upper bounds in seconds (Prometheus ``le``); a last, open bucket holds everything slower.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BUCKET_COUNT = len(LATENCY_BUCKETS) + 1


def bucket_of(latency_seconds: float) -> int:
    """The index of the bucket a latency falls in (a value equal to a bound belongs to that bound's bucket)."""
    return bisect.bisect_left(LATENCY_BUCKETS, latency_seconds)


def quantile_ms(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile in milliseconds, interpolated within its bucket as Prometheus' histogram_quantile does.

    None when the histogram is empty; a quantile in the open last bucket is reported as the highest bound.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    for index, count in enumerate(counts):
        if count and running + count >= rank:
            if index >= len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1] * 1000.0
            lower = LATENCY_BUCKETS[index - 1] if index > 0 else 0.0
            upper = LATENCY_BUCKETS[index]
            return (lower + (upper - lower) * (rank - running) / count) * 1000.0
        running += count
    return LATENCY_BUCKETS[-1] * 1000.0
