from __future__ import annotations

import math
import re
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from latency_tui.core.histogram import LogHistogram
from latency_tui.core.measurement import PERCENTILES, Timeline
from latency_tui.core.stats import (
    order_statistic_interval,
    percentile,
    summarize,
    summarize_histogram,
    throughput,
    throughput_avg_peak,
)

SIZES = (1, 2, 7, 1000, 100001)
DISTRIBUTIONS = ("lognormal", "exponential", "uniform", "constant", "float")


def make_latencies(distribution: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if distribution == "lognormal":
        return np.round(rng.lognormal(np.log(2e6), 0.6, n)).astype(np.int64)
    if distribution == "exponential":
        return (500_000 + np.round(rng.exponential(3e5, n))).astype(np.int64)
    if distribution == "uniform":
        return rng.integers(1_000_000, 1_100_000, n, dtype=np.int64)
    if distribution == "constant":
        return np.full(n, 1_234_567, dtype=np.int64)
    return rng.gamma(2.0, 1e6, n)  # float nanoseconds


def exact_coverage(n: int, q: Fraction, lo: int, hi: int) -> float:
    """P(lo + 1 <= K <= hi) for K ~ Bin(n, q): exact rational sums up to n = 1000, above
    that log-gamma terms (accurate to ~1e-9, plenty against tolerances of 1e-3)."""
    if n <= 1000:
        a, b = q.numerator, q.denominator
        hits = sum(comb(n, k) * a**k * (b - a) ** (n - k) for k in range(lo + 1, hi + 1))
        return float(Fraction(hits, b**n))
    p = float(q)
    return math.fsum(
        math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * math.log(p) + (n - k) * math.log1p(-p))
        for k in range(lo + 1, hi + 1)
    )


# -- percentile / summarize ---------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("q", (0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0))
def test_percentile_matches_numpy_linear(n: int, q: float) -> None:
    values = np.sort(make_latencies("lognormal", n, seed=n))
    assert percentile(values, q) == pytest.approx(np.percentile(values, 100 * q), rel=1e-12)


@pytest.mark.parametrize("bad", (-0.1, 1.5))
def test_percentile_rejects_bad_q(bad: float) -> None:
    with pytest.raises(ValueError):
        percentile(np.arange(3), bad)


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError):
        percentile(np.array([], dtype=np.int64), 0.5)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_summarize_matches_numpy(n: int, distribution: str) -> None:
    values = make_latencies(distribution, n, seed=n)
    summary = summarize(values)
    ms = values / 1e6
    assert summary.count == n
    assert summary.exact is True and summary.relative_error == 0.0
    assert summary.min == pytest.approx(ms.min(), rel=1e-12)
    assert summary.max == pytest.approx(ms.max(), rel=1e-12)
    assert summary.mean == pytest.approx(np.mean(ms), rel=1e-12)
    assert summary.std == pytest.approx(np.std(ms), rel=1e-9, abs=1e-12)  # ddof=0
    assert set(summary.percentiles) == {key for key, _ in PERCENTILES}
    for key, q in PERCENTILES:
        assert summary[key] == pytest.approx(np.percentile(ms, 100 * q), rel=1e-12)


@pytest.mark.parametrize("n", (7, 1000, 100001))
def test_summarize_presorted_gives_the_same(n: int) -> None:
    values = make_latencies("lognormal", n, seed=3)
    assert summarize(np.sort(values), presorted=True) == summarize(values)


def test_summarize_single_sample() -> None:
    summary = summarize(np.array([2_000_000]))
    assert (summary.min, summary.mean, summary.max, summary.std) == (2.0, 2.0, 2.0, 0.0)
    assert all(value == 2.0 for value in summary.percentiles.values())
    assert summary.intervals == {}
    (warning,) = summary.warnings  # one line naming every percentile, not one per percentile
    assert [key for key, _ in PERCENTILES if f"{key} " in warning] == [k for k, _ in PERCENTILES]


def test_summarize_rejects_empty() -> None:
    with pytest.raises(ValueError):
        summarize(np.array([], dtype=np.int64))


@pytest.mark.parametrize(
    ("n", "warned"),
    [
        (9, {"p50", "p90", "p95", "p99", "p99.9"}),
        (20, {"p90", "p95", "p99", "p99.9"}),  # p50 has exactly 10 above it
        (99, {"p90", "p95", "p99", "p99.9"}),  # p90: 9.9 above
        (100, {"p95", "p99", "p99.9"}),  # p90: exactly 10 above despite 1 - 0.9 < 0.1
        (999, {"p99", "p99.9"}),
        (1000, {"p99.9"}),
        (9999, {"p99.9"}),
        (10000, set()),
    ],
)
def test_warning_thresholds(n: int, warned: set) -> None:
    summary = summarize(np.arange(1, n + 1) * 1000)
    assert len(summary.warnings) == (1 if warned else 0)  # one line per summary, at most
    named = re.findall(r"(p[\d.]+) (?:rests )?on \d+", " ".join(summary.warnings))
    assert set(named) == warned and len(named) == len(warned)


def test_warning_text_names_the_count() -> None:
    (warning,) = summarize(np.arange(4000) + 1).warnings
    assert warning == "p99.9 rests on 4 samples above it; run longer for a meaningful value"
    (warning,) = summarize(np.arange(1000) + 1).warnings
    assert warning.startswith("p99.9 rests on 1 sample above it;")
    (warning,) = summarize(np.arange(999) + 1).warnings
    assert warning == ("p99 rests on 9 samples above it, p99.9 on 0; "
                       "run longer for meaningful values")


@pytest.mark.parametrize("n", (6, 7, 100, 299, 1000, 100001))
@pytest.mark.parametrize("distribution", ("lognormal", "exponential", "float"))
def test_intervals_bracket_the_sample_percentile(n: int, distribution: str) -> None:
    summary = summarize(make_latencies(distribution, n, seed=7), confidence=0.95)
    assert summary.confidence == 0.95
    assert "p50" in summary.intervals
    for key, q in PERCENTILES:
        if key in summary.intervals:
            low, high = summary.intervals[key]
            assert low <= summary[key] <= high
        else:
            assert order_statistic_interval(n, q) is None


@pytest.mark.parametrize("n", (1, 2, 1000, 100001))
def test_summarize_histogram_agrees_with_exact(n: int) -> None:
    values = make_latencies("lognormal", n, seed=11)
    hist = LogHistogram()
    hist.add(values)
    approx, exact = summarize_histogram(hist), summarize(values)
    assert approx.exact is False and approx.relative_error == hist.relative_error
    assert approx.count == exact.count
    for name in ("min", "mean", "std", "max"):
        assert getattr(approx, name) == pytest.approx(getattr(exact, name), rel=1e-9, abs=1e-12)
    tolerance = hist.relative_error * (1 + 1e-9)
    for key, _ in PERCENTILES:
        assert abs(approx[key] - exact[key]) <= tolerance * exact[key]
    assert approx.intervals.keys() == exact.intervals.keys()
    for key, (low, high) in exact.intervals.items():
        assert approx.intervals[key][0] == pytest.approx(low, rel=tolerance)
        assert approx.intervals[key][1] == pytest.approx(high, rel=tolerance)
    assert approx.warnings == exact.warnings


def test_summarize_histogram_rejects_empty() -> None:
    with pytest.raises(ValueError):
        summarize_histogram(LogHistogram())


# -- order-statistic intervals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "q", "expected"),
    [
        # Bin(20, 1/2): P(K <= 5) = 0.0207 <= 0.025 < P(K <= 6) = 0.0577, and by symmetry
        # P(K > 14) = 0.0207: the textbook 6th and 15th of 20 (1-based), coverage 0.9586.
        (20, 0.5, (5, 14)),
        # Bin(100, 1/2): P(K <= 39) = 0.0176 <= 0.025 < P(K <= 40) = 0.0284, symmetric on top:
        # the 40th and 61st of 100 (1-based), coverage 0.9648. (n*q*(1-q) = 25 puts this on the
        # normal approximation, floor(49.5 - 1.96 * 5) = 39 and ceil(49.5 + 9.8) = 60: agreed.)
        (100, 0.5, (39, 60)),
        # Bin(1000, 0.99): P(K <= 982) = 0.0138 <= 0.025 < P(K <= 983) = 0.0264 and
        # P(K > 996) = 0.0101 <= 0.025 < P(K > 995) = 0.0287; coverage 0.9761.
        (1000, 0.99, (982, 996)),
        # The smallest n that bounds a median: P(K = 0) + P(K = n) = 2 / 2**6 <= 0.05.
        (6, 0.5, (0, 5)),
        # 0.99**299 = 0.0495 <= 0.05: the upper tail is pinned at the largest sample and the
        # lower tail gets the rest of alpha (P(K <= 288) = 0.0005 in fact).
        (299, 0.99, (288, 298)),
        (2995, 0.999, (2982, 2994)),
    ],
)
def test_interval_known_values(n: int, q: float, expected: tuple) -> None:
    assert order_statistic_interval(n, q, 0.95) == expected


@pytest.mark.parametrize(("n", "q"), [(0, 0.5), (1, 0.5), (2, 0.5), (5, 0.5), (58, 0.95),
                                      (298, 0.99), (2994, 0.999)])
def test_interval_none_when_too_few_samples(n: int, q: float) -> None:
    assert order_statistic_interval(n, q, 0.95) is None


@pytest.mark.parametrize("n", (6, 20, 59, 100, 299, 1000, 2995, 5000, 100_000, 2_000_000))
@pytest.mark.parametrize("q", (Fraction(1, 2), Fraction(9, 10), Fraction(95, 100),
                               Fraction(99, 100), Fraction(999, 1000)))
@pytest.mark.parametrize("confidence", (0.9, 0.95, 0.99))
def test_interval_exact_coverage(n: int, q: Fraction, confidence: float) -> None:
    ranks = order_statistic_interval(n, float(q), confidence)
    if ranks is None:
        # Even the widest interval, the smallest to the largest sample, would fall short.
        assert exact_coverage(n, q, 0, n - 1) < confidence if n >= 2 else True
        return
    lo, hi = ranks
    assert 0 <= lo < hi <= n - 1
    coverage = exact_coverage(n, q, lo, hi)
    # Exact sums guarantee the coverage; the normal approximation is allowed a hair off.
    slack = 0.0 if n * float(q) * (1 - float(q)) < 25 else 0.005
    assert coverage >= confidence - slack
    # Not needlessly wide: one rank less on each side falls short.
    if lo + 1 < hi - 1:
        assert exact_coverage(n, q, lo + 1, hi - 1) < confidence + slack


@pytest.mark.parametrize(
    ("n", "q", "trials"),
    [(20, 0.5, 4000), (100, 0.5, 4000), (300, 0.99, 4000), (1000, 0.99, 2000),
     (5000, 0.9, 800)],
)
def test_interval_empirical_coverage(n: int, q: float, trials: int) -> None:
    lo, hi = order_statistic_interval(n, q, 0.95)
    samples = np.random.default_rng(12345).random((trials, n))
    ordered = np.partition(samples, (lo, hi), axis=1)
    # The true q-quantile of U(0, 1) is q itself.
    covered = np.mean((ordered[:, lo] <= q) & (q <= ordered[:, hi]))
    monte_carlo_sd = np.sqrt(0.95 * 0.05 / trials)
    assert covered >= 0.95 - 3 * monte_carlo_sd


@pytest.mark.parametrize(("n", "q", "confidence"), [(-1, 0.5, 0.95), (10, 0.0, 0.95),
                                                    (10, 1.0, 0.95), (10, 0.5, 1.0)])
def test_interval_rejects_bad_arguments(n: int, q: float, confidence: float) -> None:
    with pytest.raises(ValueError):
        order_statistic_interval(n, q, confidence)


# -- throughput ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "duration_s", "batch_size", "inferences_per_s", "samples_per_s"),
    [(1000, 2.0, 1, 500.0, 500.0), (1000, 2.0, 4, 500.0, 2000.0), (0, 1.0, 8, 0.0, 0.0),
     (3, 0.5, 2, 6.0, 12.0)],
)
def test_throughput(samples: int, duration_s: float, batch_size: int,
                    inferences_per_s: float, samples_per_s: float) -> None:
    result = throughput(samples, duration_s, batch_size)
    assert result.inferences_per_s == pytest.approx(inferences_per_s)
    assert result.samples_per_s == pytest.approx(samples_per_s)


@pytest.mark.parametrize(("samples", "duration_s", "batch_size"),
                         [(10, 0.0, 1), (10, -1.0, 1), (10, 1.0, 0), (-1, 1.0, 1)])
def test_throughput_rejects_bad_arguments(samples: int, duration_s: float,
                                          batch_size: int) -> None:
    with pytest.raises(ValueError):
        throughput(samples, duration_s, batch_size)


@pytest.mark.parametrize(
    ("per_bucket", "batch_size", "bucket_s", "average", "peak"),
    [
        ([10, 100, 120, 100, 30], 1, 1.0, 320 / 3, 120.0),  # ramp-up and cut-off left out
        ([10, 100, 120, 100, 30], 4, 1.0, 4 * 320 / 3, 480.0),
        ([50, 0, 100, 100, 20], 1, 1.0, 200 / 3, 100.0),  # a stall counts as a zero bucket
        ([5, 10, 10, 10, 1], 2, 0.5, 2 * 20.0, 40.0),  # half-second buckets: rates per second
        ([10, 10, 3], 1, 1.0, 10.0, 10.0),
    ],
)
def test_throughput_avg_peak(per_bucket: list, batch_size: int, bucket_s: float,
                             average: float, peak: float) -> None:
    result = throughput_avg_peak(per_bucket, bucket_s, batch_size, len(per_bucket) * bucket_s)
    assert result == pytest.approx((average, peak))


def test_throughput_avg_peak_of_a_short_run_uses_elapsed_time() -> None:
    # 150 completions over 1.5 s: one full bucket of 100, then 50 in half a bucket.
    average, peak = throughput_avg_peak([100, 50], 1.0, 2, 1.5)
    assert average == pytest.approx(2 * 150 / 1.5)
    assert peak >= average


def test_throughput_avg_peak_needs_a_bucket() -> None:
    with pytest.raises(ValueError):
        throughput_avg_peak([], 1.0, 1, 1.0)


def test_throughput_with_a_timeline_has_neuronperfs_average_and_peak() -> None:
    timeline = Timeline(1.0, (10, 100, 120, 100, 30), (None,) * 5, (None,) * 5, (None,) * 5,
                        0.005)
    result = throughput(360, 4.5, 2, timeline)
    assert result.samples_per_s == pytest.approx(2 * 360 / 4.5)
    assert (result.avg_samples_per_s, result.peak_samples_per_s) == pytest.approx(
        (2 * 320 / 3, 240.0))
    assert throughput(360, 4.5, 2).avg_samples_per_s is None


