"""How far one distribution of predictions moved from another: the Jensen-Shannon distance.

One statistic serves both the rollout evidence gates (a candidate's top-1 confidence
histogram against the active version's, on the same live requests) and the gateway's
drift monitor (the live histogram against the reference recorded at evaluation time).

Why Jensen-Shannon distance and not the population stability index (PSI): it is
symmetric, bounded (0 = identical, 1 = disjoint, with base-2 logarithms) and defined
when a bin is empty on one side, which is common with 10 confidence bins and a few
hundred requests; PSI divides by each bin's share and needs an arbitrary epsilon for
empty bins, so its value on small samples depends on that epsilon. The square root of
the divergence (the distance) is a metric, so thresholds read as distances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    if any(count < 0 for count in counts):
        raise ValueError("a histogram count cannot be negative")
    return [count / total for count in counts] if total > 0 else []


def _divergence(p: Sequence[float], m: Sequence[float]) -> float:
    """Kullback-Leibler divergence KL(p || m), base 2; m > 0 wherever p > 0."""
    return sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m, strict=True) if pi > 0)


def jensen_shannon_distance(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Distance in [0, 1] between two histograms over the same bins (counts or shares).

    None when either side has no observations: no evidence is not the same as no shift.
    """
    if len(first) != len(second):
        raise ValueError(f"histograms differ in length: {len(first)} and {len(second)} bins")
    p, q = _shares(first), _shares(second)
    if not p or not q:
        return None
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
    divergence = (_divergence(p, m) + _divergence(q, m)) / 2
    # Rounding can leave a tiny negative or a value a hair above 1.
    return math.sqrt(min(1.0, max(0.0, divergence)))
