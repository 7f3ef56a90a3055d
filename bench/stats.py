"""Summary statistics for latency samples: median and nearest-rank percentiles."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(xs: Sequence[float]) -> float:
    """The median; raises ValueError on an empty sample."""
    if not xs:
        raise ValueError("median of an empty sample")
    return float(statistics.median(xs))


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 100]: a value that was actually observed, never interpolated.

    With fewer than 100 samples p99 is the maximum, which is the honest reading of a small sample.
    """
    if not xs:
        raise ValueError("percentile of an empty sample")
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q}")
    ordered = sorted(xs)
    return float(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)])


def p99(xs: Sequence[float]) -> float:
    """Nearest-rank 99th percentile."""
    return percentile(xs, 99)
