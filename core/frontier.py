"""Pure functions of the search under bounds: whether a configuration meets a latency bound,
judged on its confidence intervals, and the Pareto frontier of throughput against p99.

A bound "p99 <= X ms" is met only when it is met with confidence, not by the point estimate:

- ``meets``: the upper end of p99's interval is within the bound (or the upper end of a higher
  percentile's, which bounds p99 from above);
- ``fails``: the lower end of p99's interval is above the bound (or the lower end of a lower
  percentile's interval: p50's interval above 20 ms puts p99 above it too);
- ``uncertain``: the interval straddles the bound, or there are too few samples to bound the
  percentile at all (p99 needs about 300).

The intervals are the summary's two-sided distribution-free ones (``stats``), at its
``confidence``; each one-sided statement above holds with at least that confidence.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .measurement import PERCENTILES, LatencySummary

VERDICTS = ("meets", "fails", "uncertain")
_QUANTILE = dict(PERCENTILES)


def bound_verdict(summary: Optional[LatencySummary], key: str, bound_ms: float
                  ) -> Tuple[str, str]:
    """``(verdict, why)`` for "percentile ``key`` <= ``bound_ms``" given a latency summary."""
    if key not in _QUANTILE:
        raise ValueError(f"unknown percentile {key!r}; one of {sorted(_QUANTILE)}")
    if summary is None or summary.count == 0:
        return "uncertain", f"no samples to judge {key} by"
    q = _QUANTILE[key]
    intervals = summary.intervals
    below = [k for k, qk in PERCENTILES if qk <= q and k in intervals]
    above = [k for k, qk in PERCENTILES if qk >= q and k in intervals]
    for k in below:
        low = intervals[k][0]
        if low > bound_ms:
            lead = f"{key}" if k == key else f"{k} (and so {key})"
            return "fails", f"{lead} is above {bound_ms:g} ms: its interval starts at {low:.3g} ms"
    for k in above:
        high = intervals[k][1]
        if high <= bound_ms:
            lead = f"{key}" if k == key else f"{k} (and so {key})"
            return "meets", f"{lead} is within {bound_ms:g} ms: its interval ends at {high:.3g} ms"
    if key not in intervals:
        return "uncertain", (f"too few samples ({summary.count}) to bound {key} "
                             f"(estimate {summary.percentiles.get(key, math.nan):.3g} ms)")
    low, high = intervals[key]
    return "uncertain", (f"{key}'s interval [{low:.3g}, {high:.3g}] ms straddles "
                         f"{bound_ms:g} ms")


def slo_verdict(summary: Optional[LatencySummary], bounds: Mapping[str, Optional[float]]
                ) -> Tuple[str, str]:
    """One verdict for several bounds (``{"p99": 20.0, "p50": None}``; None bounds are left
    out): fails when any fails, meets when all meet, uncertain otherwise."""
    judged = [(key, bound_verdict(summary, key, bound)) for key, bound in bounds.items()
              if bound is not None]
    if not judged:
        raise ValueError("no bound to judge by")
    for wanted in ("fails", "uncertain"):
        reasons = [why for _, (verdict, why) in judged if verdict == wanted]
        if reasons:
            return wanted, "; ".join(reasons)
    return "meets", "; ".join(why for _, (_, why) in judged)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def pareto_frontier(points: Iterable[Mapping[str, Any]], *, up: str = "samples_per_s",
                    down: str = "p99_ms") -> List[Mapping[str, Any]]:
    """The points no other point dominates: none has at least as much ``up`` and at most as
    much ``down``, better in one of them. Points whose ``up`` or ``down`` is missing, None or
    NaN are left out; equal points are all kept. Returned in order of ``down`` ascending (and so
    of ``up`` ascending), each the very mapping given."""
    usable: List[Tuple[float, float, int, Mapping[str, Any]]] = []
    for i, point in enumerate(points):
        u, d = _number(point.get(up)), _number(point.get(down))
        if u is not None and d is not None:
            usable.append((d, -u, i, point))
    usable.sort()  # lowest down first; among equals, highest up first
    frontier: List[Mapping[str, Any]] = []
    best_up = -math.inf
    last: Optional[Tuple[float, float]] = None
    for d, neg_u, _, point in usable:
        u = -neg_u
        if u > best_up:
            frontier.append(point)
            best_up = u
            last = (d, u)
        elif last is not None and (d, u) == last:
            frontier.append(point)  # the same as a frontier point: dominated by none
    return frontier


def verdict_counts(points: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    """How many points have each verdict ("meets", "fails", "uncertain", "error")."""
    counts = {name: 0 for name in VERDICTS + ("error",)}
    for point in points:
        verdict = point.get("verdict")
        if verdict in counts:
            counts[verdict] += 1
    return counts
