"""Latency statistics over the timed runs of one model.

Every figure is per single-image inference (batch 1) in microseconds.
Percentiles use linear interpolation between the two nearest ranks (numpy's
default): for times ``t_1 <= ... <= t_n`` the q-th percentile is
``t_(1 + q/100 * (n-1))`` with fractional ranks interpolated, so the median of
an even count is the mean of the middle two. Images per second is
``1e6 / median_us``: the throughput of one stream at the typical latency.

Example:
    >>> s = latency_stats([1000 * k for k in range(1, 11)])  # 1..10 us in ns
    >>> s.min, s.median, s.p90, s.max
    (1.0, 5.5, 9.1, 10.0)
"""

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Per-inference latency in microseconds over ``runs`` timed runs.

    ``median`` and ``p90`` are None when the engine reports only aggregates
    (``lce_benchmark_model`` prints min, max, mean and standard deviation;
    recent versions add a median).
    """

    runs: int
    min: float
    median: Optional[float]
    p90: Optional[float]
    max: float
    mean: float
    std: float

    @property
    def images_per_s(self) -> Optional[float]:
        """``1e6 / median`` (``1e6 / mean`` when the median is unknown)."""
        typical = self.median if self.median is not None else self.mean
        return 1e6 / typical if typical > 0 else None

    def to_dict(self) -> dict:
        return asdict(self)


def latency_stats(times_ns) -> LatencyStats:
    """Statistics of per-run times given in nanoseconds.

    Args:
        times_ns: one duration per timed run, in nanoseconds.

    Returns:
        :class:`LatencyStats` in microseconds; ``std`` is the population
        standard deviation.

    Raises:
        ValueError: no times, or a negative time.
    """
    t = np.asarray(list(times_ns), dtype=np.float64) / 1000.0
    if t.size == 0:
        raise ValueError("no timed runs to summarize")
    if (t < 0).any():
        raise ValueError("a run time is negative")
    return LatencyStats(
        runs=int(t.size),
        min=float(t.min()),
        median=float(np.percentile(t, 50)),
        p90=float(np.percentile(t, 90)),
        max=float(t.max()),
        mean=float(t.mean()),
        std=float(t.std()),
    )


def combine_aggregates(parts) -> LatencyStats:
    """Pool several aggregate-only :class:`LatencyStats` into one.

    For engines measured in chunks that report no per-run times: counts add,
    min and max are taken over the parts, the mean is count-weighted and the
    standard deviation pooled from each part's mean and deviation. A median
    survives only when there is a single part.

    Raises:
        ValueError: no parts.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("no measurements to combine")
    if len(parts) == 1:
        return parts[0]
    n = sum(p.runs for p in parts)
    mean = sum(p.runs * p.mean for p in parts) / n
    second = sum(p.runs * (p.std**2 + p.mean**2) for p in parts) / n
    return LatencyStats(
        runs=n,
        min=min(p.min for p in parts),
        median=None,
        p90=None,
        max=max(p.max for p in parts),
        mean=mean,
        std=math.sqrt(max(second - mean**2, 0.0)),
    )


def ratio_of(a: LatencyStats, b: LatencyStats) -> tuple:
    """``(a / b, basis)``: the ratio of medians, or of means if either lacks one."""
    if a.median is not None and b.median is not None and b.median > 0:
        return a.median / b.median, "median"
    if b.mean > 0:
        return a.mean / b.mean, "mean"
    return None, None
