"""Statistics of a latency stream as pure functions: no printing, no state.

The engine hands over integer nanoseconds (every sample up to the cap, a ``LogHistogram``
past it); these functions turn them into the frozen ``LatencySummary`` and ``Throughput`` in
milliseconds. Percentiles use numpy's default "linear" definition, written out here so that
results do not depend on the numpy version. Confidence intervals are distribution free: they
rest on order statistics and the binomial law alone, because latency distributions are skewed,
multi-modal and heavy-tailed, and no parametric model fits them.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Optional, Sequence

import numpy as np

from .histogram import LogHistogram
from .measurement import PERCENTILES, LatencySummary, Throughput, Timeline

#: Fewer samples than this above a percentile make it an anecdote rather than a statistic.
MIN_SAMPLES_ABOVE = 10
#: Above this binomial variance n*q*(1-q) the normal approximation replaces exact sums.
NORMAL_APPROXIMATION_VARIANCE = 25.0

_NS_PER_MS = 1e6


def percentile(sorted_ns: np.ndarray, q: float) -> float:
    """The ``q``-quantile (0 <= q <= 1) of an ascending array, as numpy's default "linear".

    Interpolates between the order statistics around rank ``(n - 1) * q``, in the form numpy
    uses since 1.22, which is exact at both ends.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1], not {q!r}")
    n = len(sorted_ns)
    if n == 0:
        raise ValueError("percentile of an empty array")
    position = (n - 1) * q
    below = min(math.floor(position), n - 1)
    above = min(below + 1, n - 1)
    fraction = position - below
    low, high = float(sorted_ns[below]), float(sorted_ns[above])
    if fraction >= 0.5:
        return high - (high - low) * (1.0 - fraction)
    return low + (high - low) * fraction


def order_statistic_interval(
    n: int, q: float, confidence: float = 0.95
) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` that bracket the true ``q``-quantile with ``confidence``.

    With ``K`` the number of the ``n`` samples that fall below the true quantile,
    ``K ~ Binomial(n, q)`` whatever the (continuous) distribution, and the interval
    ``[X_(lo), X_(hi)]`` of sorted samples covers the quantile exactly when
    ``lo + 1 <= K <= hi`` (ties, as among integer nanoseconds, only raise the coverage).
    The ranks are chosen equal-tailed: ``lo`` the largest rank with
    ``P(K <= lo) <= alpha / 2`` and ``hi`` the smallest with ``P(K > hi) <= alpha / 2``; where
    one tail cannot get that small within ``0..n-1`` (the extreme ranks are too close to the
    quantile), it is pinned at the end and the other tail gets what remains of ``alpha``.
    Exact binomial sums are used while ``n*q*(1-q) < 25`` and the normal approximation with
    continuity correction above. Returns ``None`` when even ``[X_(0), X_(n-1)]`` falls short:
    too few samples to bound this quantile.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, not {n!r}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), not {q!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence!r}")
    if n < 2:
        return None
    alpha = 1.0 - confidence
    variance = n * q * (1.0 - q)
    if variance >= NORMAL_APPROXIMATION_VARIANCE:
        z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        centre = n * q - 0.5
        lo = math.floor(centre - z * math.sqrt(variance))
        hi = math.ceil(centre + z * math.sqrt(variance))
        return max(lo, 0), min(hi, n - 1)

    # Tails left out by the widest interval [X_(0), X_(n-1)]: P(K = 0) and P(K = n).
    floor_low = math.exp(n * math.log1p(-q))
    floor_high = math.exp(n * math.log(q))
    if floor_low + floor_high > alpha:
        return None
    budget_low = budget_high = alpha / 2.0
    if floor_high > budget_high:
        budget_high, budget_low = floor_high, alpha - floor_high
    elif floor_low > budget_low:
        budget_low, budget_high = floor_low, alpha - floor_low

    first, pmf = _binomial_pmf_window(n, q)
    cdf = np.cumsum(pmf)  # P(K <= first + i)
    above = np.append(np.cumsum(pmf[::-1])[::-1][1:], 0.0)  # P(K > first + i)
    # The window holds all but a negligible mass: P(K < first) and P(K > last) count as 0.
    candidates = np.flatnonzero(cdf <= budget_low)
    lo = first + int(candidates[-1]) if candidates.size else first - 1
    hi = first + int(np.flatnonzero(above <= budget_high)[0])
    return max(lo, 0), min(hi, n - 1)


def quantile_lower_rank(n: int, q: float, confidence: float = 0.95) -> Optional[int]:
    """The 0-based rank ``lo`` whose order statistic lies below the true ``q``-quantile with
    ``confidence`` (one-sided): the largest ``lo`` with ``P(K <= lo) <= 1 - confidence``, ``K ~
    Binomial(n, q)`` the samples below the quantile; None when even the smallest sample cannot
    say so. Unlike the two-sided interval it needs few samples: for "p99 is above 20 ms" a few
    tens of samples over 20 ms do (no upper end, which takes about 300, is needed).
    """
    if n < 1 or not 0.0 < q < 1.0 or not 0.0 < confidence < 1.0:
        return None
    alpha = 1.0 - confidence
    variance = n * q * (1.0 - q)
    if variance >= NORMAL_APPROXIMATION_VARIANCE:
        z = NormalDist().inv_cdf(confidence)
        lo = math.floor(n * q - 0.5 - z * math.sqrt(variance))
        return lo if lo >= 0 else None
    first, pmf = _binomial_pmf_window(n, q)
    candidates = np.flatnonzero(np.cumsum(pmf) <= alpha)
    if candidates.size:
        return min(first + int(candidates[-1]), n - 1)
    return first - 1 if first > 0 else None


def _binomial_pmf_window(n: int, q: float) -> tuple[int, np.ndarray]:
    """``(first, pmf)``: ``P(K = first + i)`` for ``K ~ Bin(n, q)`` over all but ~1e-20 of
    the mass. Only called when the standard deviation is below 5, so the window stays short.
    """
    mean, sd = n * q, math.sqrt(n * q * (1.0 - q))
    first = max(0, math.floor(mean - 12.0 * sd - 12.0))
    last = min(n, math.ceil(mean + 12.0 * sd + 12.0))
    log_q, log_p = math.log(q), math.log1p(-q)
    log_n = math.lgamma(n + 1)
    pmf = [
        math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        for k in range(first, last + 1)
    ]
    return first, np.asarray(pmf)


def summarize(
    latencies_ns: np.ndarray, *, confidence: float = 0.95, presorted: bool = False
) -> LatencySummary:
    """Every statistic of a stream of latencies (nanoseconds), reported in milliseconds.

    ``std`` is the population standard deviation (ddof=0): the summary describes the samples
    measured, not an estimate of a wider population, and it is 0 rather than undefined for a
    single sample. Intervals are given for every percentile that has enough samples; one warning
    names the percentiles with fewer than ``MIN_SAMPLES_ABOVE`` samples above them.
    """
    values = np.asarray(latencies_ns)
    if values.ndim != 1:
        values = values.ravel()
    if values.size == 0:
        raise ValueError("cannot summarise an empty stream of latencies")
    ordered = values if presorted else np.sort(values)
    n = int(ordered.size)
    percentiles = {key: percentile(ordered, q) / _NS_PER_MS for key, q in PERCENTILES}
    intervals: dict[str, tuple[float, float]] = {}
    for key, q in PERCENTILES:
        ranks = order_statistic_interval(n, q, confidence)
        if ranks is not None:
            intervals[key] = (float(ordered[ranks[0]]) / _NS_PER_MS,
                              float(ordered[ranks[1]]) / _NS_PER_MS)
    return LatencySummary(
        count=n,
        min=float(ordered[0]) / _NS_PER_MS,
        mean=float(np.mean(ordered, dtype=np.float64)) / _NS_PER_MS,
        std=float(np.std(ordered, dtype=np.float64)) / _NS_PER_MS,
        max=float(ordered[-1]) / _NS_PER_MS,
        percentiles=percentiles,
        intervals=intervals,
        confidence=confidence,
        exact=True,
        warnings=tail_warnings(n),
    )


def summarize_histogram(hist: LogHistogram, *, confidence: float = 0.95) -> LatencySummary:
    """``summarize`` for a run past the sample cap: percentiles and intervals come from the
    buckets (within ``hist.relative_error``); count, mean, std, min and max are exact.
    """
    n = hist.count
    if n == 0:
        raise ValueError("cannot summarise an empty histogram")
    percentiles = {key: hist.percentile(q) / _NS_PER_MS for key, q in PERCENTILES}
    intervals: dict[str, tuple[float, float]] = {}
    for key, q in PERCENTILES:
        ranks = order_statistic_interval(n, q, confidence)
        if ranks is not None:
            intervals[key] = (hist.value_at_rank(ranks[0]) / _NS_PER_MS,
                              hist.value_at_rank(ranks[1]) / _NS_PER_MS)
    return LatencySummary(
        count=n,
        min=hist.min / _NS_PER_MS,
        mean=hist.mean / _NS_PER_MS,
        std=hist.std / _NS_PER_MS,
        max=hist.max / _NS_PER_MS,
        percentiles=percentiles,
        intervals=intervals,
        confidence=confidence,
        exact=False,
        relative_error=hist.relative_error,
        warnings=tail_warnings(n),
    )


def samples_above(n: int, q: float) -> int:
    """How many of ``n`` samples lie above the ``q``-quantile: ``floor(n * (1 - q))``.

    The small slack absorbs binary rounding (``1 - 0.9`` is a hair under 0.1).
    """
    return math.floor(n * (1.0 - q) + 1e-9)


def tail_warnings(n: int) -> tuple[str, ...]:
    """At most one warning: every percentile that rests on fewer than ``MIN_SAMPLES_ABOVE``
    samples, named in one line ("p99 rests on 4 samples above it, p99.9 on 0; ...") so that a
    short run raises one notice per configuration rather than one per percentile."""
    parts: list[str] = []
    for key, q in PERCENTILES:
        above = samples_above(n, q)
        if above < MIN_SAMPLES_ABOVE:
            if parts:
                parts.append(f"{key} on {above}")
            else:
                noun = "sample" if above == 1 else "samples"
                parts.append(f"{key} rests on {above} {noun} above it")
    if not parts:
        return ()
    advice = "a meaningful value" if len(parts) == 1 else "meaningful values"
    return (f"{', '.join(parts)}; run longer for {advice}",)


def throughput(samples: int, duration_s: float, batch_size: int,
               timeline: Optional[Timeline] = None) -> Throughput:
    """Throughput of ``samples`` timed inferences of ``batch_size`` inputs over ``duration_s``;
    with the configuration's ``timeline``, also its average and peak per bucket."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, not {duration_s!r}")
    if samples < 0:
        raise ValueError(f"samples must not be negative, not {samples!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    per_s = samples / duration_s
    avg = peak = None
    if timeline is not None and timeline.inferences:
        avg, peak = throughput_avg_peak(timeline.inferences, timeline.bucket_s, batch_size,
                                        duration_s)
    return Throughput(inferences_per_s=per_s, samples_per_s=per_s * batch_size,
                      avg_samples_per_s=avg, peak_samples_per_s=peak)


def throughput_avg_peak(
    counts: "Sequence[int] | np.ndarray", bucket_s: float, batch_size: int, elapsed_s: float
) -> tuple[float, float]:
    """``(average, peak)`` samples per second from completions counted per ``bucket_s`` bucket.

    Empty buckets in the middle (a stall) count as zero. With three buckets or more the average
    leaves out the first (ramp-up) and the last (cut short when the run stopped); with fewer it
    is the total over ``elapsed_s`` (measuring start to the last completion), and the peak is
    never below it.
    """
    rates = np.asarray(counts, dtype=np.float64) * (batch_size / bucket_s)
    if rates.size == 0:
        raise ValueError("no buckets to measure throughput from")
    peak = float(rates.max())
    if rates.size >= 3:
        return float(rates[1:-1].mean()), peak
    if elapsed_s <= 0:
        return peak, peak
    average = float(np.sum(counts)) * batch_size / elapsed_s
    return average, max(peak, average)
