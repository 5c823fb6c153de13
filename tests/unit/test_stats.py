"""Percentiles of latency samples."""

from __future__ import annotations

from sessionwarden.ops.stats import percentiles


def test_percentiles_interpolate_within_the_sample() -> None:
    """p50 of 1..101 is 51 and p99 stays below the maximum, never past it."""
    assert [51.0, 100.0] == percentiles([float(v) for v in range(1, 102)], 50, 99)


def test_one_sample_is_every_percentile_of_itself() -> None:
    """A run with one revocation still reports its latency (quantiles needs two points)."""
    assert [0.25, 0.25] == percentiles([0.25], 90, 99)
