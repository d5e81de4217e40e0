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

An optional memory bound ("peak device memory <= X MB") is judged on the result's
``details["device_memory"]`` (the CUDA backend's peak reserved memory per copy): meets or fails
on the figure, and uncertain where there is none (the CPU backend reports none), saying so.
Several bounds make one verdict (``combine_verdicts``): fails when any fails, meets when all
meet, uncertain otherwise.
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
    judged = [bound_verdict(summary, key, bound) for key, bound in bounds.items()
              if bound is not None]
    if not judged:
        raise ValueError("no bound to judge by")
    return combine_verdicts(judged)


def combine_verdicts(judged: Iterable[Tuple[str, str]]) -> Tuple[str, str]:
    """One ``(verdict, why)`` of several: fails when any fails (its reasons), meets when all
    meet, uncertain otherwise."""
    judged = list(judged)
    if not judged:
        raise ValueError("no verdict to combine")
    for wanted in ("fails", "uncertain"):
        reasons = [why for verdict, why in judged if verdict == wanted]
        if reasons:
            return wanted, "; ".join(reasons)
    return "meets", "; ".join(why for _, why in judged)


def peak_memory_mb(details: Any, copy_mode: str = "thread") -> Optional[float]:
    """A result's peak device memory (MB) from ``details["device_memory"]`` (one report per
    copy: ``peak_reserved_mb``, else ``peak_allocated_mb``), None where there is none. Thread
    copies share one process and its allocator, whose peak each reports: the largest; process
    copies hold their own: the sum (for copies spread over several devices, more than any one
    device holds: a bound errs on the safe side)."""
    reports = details.get("device_memory") if isinstance(details, Mapping) else None
    if not isinstance(reports, (list, tuple)):
        return None
    figures = []
    for report in reports:
        if isinstance(report, Mapping):
            value = _number(report.get("peak_reserved_mb"))
            value = _number(report.get("peak_allocated_mb")) if value is None else value
            if value is not None:
                figures.append(value)
    if not figures:
        return None
    return max(figures) if copy_mode == "thread" else sum(figures)


def memory_verdict(peak_mb: Optional[float], bound_mb: float) -> Tuple[str, str]:
    """``(verdict, why)`` for "peak device memory <= ``bound_mb``": the figure is a reading,
    not an estimate, so it meets or fails outright; uncertain when there is no figure."""
    if peak_mb is None:
        return "uncertain", (f"no device memory figure (the CPU backend reports none): the "
                             f"{bound_mb:g} MB memory bound cannot be judged")
    if peak_mb <= bound_mb:
        return "meets", f"peak device memory {peak_mb:,.0f} MB is within {bound_mb:g} MB"
    return "fails", f"peak device memory {peak_mb:,.0f} MB is above {bound_mb:g} MB"


def trial_verdict(summary: Optional[LatencySummary], details: Mapping[str, Any],
                  bounds: Mapping[str, Optional[float]], max_memory_mb: Optional[float] = None,
                  copy_mode: str = "thread") -> Tuple[str, str]:
    """One finished trial against latency bounds and an optional memory bound. A trial the
    engine abandoned (``details["abandoned"]``: p99 above the bound with confidence) fails,
    whatever the interval of its shorter run says."""
    abandoned = details.get("abandoned")
    if isinstance(abandoned, Mapping):
        latency = ("fails", f"abandoned after {abandoned.get('after_s', 0):.3g} s: p99 is above "
                            f"{abandoned.get('bound_ms', 0):g} ms (its lower bound "
                            f"{abandoned.get('p99_low_ms', 0):.3g} ms at "
                            f"{abandoned.get('confidence', 0.999):.1%} confidence)")
    else:
        latency = slo_verdict(summary, bounds)
    if max_memory_mb is None:
        return latency
    memory = memory_verdict(peak_memory_mb(details, copy_mode), max_memory_mb)
    return combine_verdicts([latency, memory])


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
