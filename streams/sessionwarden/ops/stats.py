"""Percentiles of latency samples, from statistics.quantiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentiles(values: Sequence[float], *pcts: int) -> list[float]:
    """The ``pcts`` (1 to 99) of a non-empty sample, interpolated within its range ("inclusive"
    quantiles); one sample is every percentile of itself."""
    if len(values) == 1:
        return [float(values[0])] * len(pcts)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return [cuts[pct - 1] for pct in pcts]
