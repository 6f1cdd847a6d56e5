"""Latency histograms: the bucket a latency falls in, and quantiles read the way Prometheus reads them."""

from __future__ import annotations

import pytest

from app.stats.latency import BUCKET_COUNT, LATENCY_BUCKETS, bucket_of, quantile_ms


def test_bucket_bounds_are_inclusive_like_le():
    assert bucket_of(0.0) == 0 and bucket_of(0.0001) == 0 and bucket_of(0.00011) == 1
    assert bucket_of(2.5) == len(LATENCY_BUCKETS) - 1 and bucket_of(99.0) == BUCKET_COUNT - 1


def test_quantile_interpolates_within_its_bucket():
    counts = [0] * BUCKET_COUNT
    counts[bucket_of(0.0003)] = 10  # all in (0.25, 0.5] ms
    assert quantile_ms(counts, 0.5) == pytest.approx(0.375)
    assert quantile_ms(counts, 1.0) == pytest.approx(0.5)
    counts[-1] = 90  # most in the open bucket: reported as the highest bound
    assert quantile_ms(counts, 0.95) == pytest.approx(2500.0)


def test_empty_and_invalid():
    assert quantile_ms([0] * BUCKET_COUNT, 0.5) is None and quantile_ms([], 0.5) is None
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        quantile_ms([1], 1.5)
