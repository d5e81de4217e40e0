"""The pure parts of the search under bounds: verdicts on confidence intervals and the Pareto
frontier of throughput against p99."""

from __future__ import annotations

import math

import numpy as np
import pytest

from latency_tui.core.frontier import bound_verdict, pareto_frontier, slo_verdict, verdict_counts
from latency_tui.core.measurement import PERCENTILE_KEYS, LatencySummary
from latency_tui.core.stats import summarize


def summary(count=1000, **intervals):
    """A summary whose percentiles are the middles of the given intervals ("p99": (lo, hi))."""
    percentiles = {key: 1.0 for key in PERCENTILE_KEYS}
    percentiles.update({key.replace("_", "."): (lo + hi) / 2 for key, (lo, hi) in intervals.items()})
    return LatencySummary(count=count, min=0.5, mean=1.0, std=0.1, max=50.0,
                          percentiles=percentiles,
                          intervals={key.replace("_", "."): pair for key, pair in intervals.items()})


@pytest.mark.parametrize("intervals, verdict, says", [
    ({"p99": (8.0, 9.0)}, "meets", "interval ends at 9"),
    ({"p99": (8.0, 10.0)}, "meets", "interval ends at 10"),  # the bound itself is within
    ({"p99": (10.5, 12.0)}, "fails", "interval starts at 10.5"),
    ({"p99": (9.0, 11.0)}, "uncertain", "straddles 10 ms"),
    ({"p99": (10.0, 11.0)}, "uncertain", "straddles"),  # a low end on the bound: not above it
    ({"p50": (11.0, 12.0)}, "fails", "p50 (and so p99) is above 10 ms"),  # too few for p99
    ({"p50": (4.0, 5.0), "p90": (6.0, 7.0)}, "uncertain", "too few samples (1000) to bound p99"),
    ({"p99": (9.0, 11.0), "p99_9": (9.5, 9.9)}, "meets", "p99.9 (and so p99)"),
    ({}, "uncertain", "too few samples"),
])
def test_a_p99_bound_is_judged_on_the_interval_not_the_estimate(intervals, verdict, says):
    got, why = bound_verdict(summary(**intervals), "p99", 10.0)
    assert got == verdict
    assert says in why


def test_no_samples_is_uncertain_and_an_unknown_percentile_is_refused():
    assert bound_verdict(None, "p99", 10.0)[0] == "uncertain"
    with pytest.raises(ValueError, match="unknown percentile"):
        bound_verdict(summary(), "p42", 10.0)


@pytest.mark.parametrize("p99, p50, verdict", [
    ((1.0, 2.0), (0.5, 0.6), "meets"),
    ((1.0, 2.0), (0.9, 1.1), "uncertain"),  # p99 meets, p50 straddles its bound of 1 ms
    ((1.0, 2.0), (1.5, 1.6), "fails"),  # p50 fails even though p99 meets
    ((2.5, 3.0), (0.5, 0.6), "fails"),
    ((1.5, 2.5), (1.5, 1.6), "fails"),  # a failure outweighs an uncertainty
])
def test_several_bounds_fail_when_any_fails_and_meet_only_when_all_meet(p99, p50, verdict):
    judged = summary(p99=p99, p50=p50)
    assert slo_verdict(judged, {"p99": 2.0, "p50": 1.0})[0] == verdict


def test_a_missing_bound_is_left_out_and_no_bound_is_refused():
    assert slo_verdict(summary(p99=(1.0, 2.0)), {"p99": 2.0, "p50": None})[0] == "meets"
    with pytest.raises(ValueError, match="no bound"):
        slo_verdict(summary(), {"p99": None})


def test_verdicts_on_real_summaries_follow_the_sample_count():
    rng = np.random.default_rng(3)
    few = summarize((rng.uniform(1.0, 2.0, 100) * 1e6).astype(np.int64))  # p99 unbounded
    many = summarize((rng.uniform(1.0, 2.0, 5000) * 1e6).astype(np.int64))
    assert "p99" not in few.intervals
    assert bound_verdict(few, "p99", 2.5)[0] == "uncertain"
    assert bound_verdict(few, "p99", 0.9)[0] == "fails"  # p50's interval is above it already
    assert bound_verdict(many, "p99", 2.5)[0] == "meets"
    assert bound_verdict(many, "p99", 1.9)[0] == "fails"


def P(rate, p99, name=None):
    return {"samples_per_s": rate, "p99_ms": p99, "name": name}


@pytest.mark.parametrize("points, frontier", [
    ([], []),
    ([P(100, 5, "a")], ["a"]),
    ([P(100, 5, "a"), P(200, 4, "b")], ["b"]),  # b is better on both
    ([P(100, 5, "a"), P(200, 10, "b")], ["a", "b"]),  # a trade-off
    ([P(100, 5, "a"), P(100, 6, "b")], ["a"]),  # equal throughput, worse p99
    ([P(100, 5, "a"), P(90, 5, "b")], ["a"]),  # equal p99, less throughput
    ([P(100, 5, "a"), P(100, 5, "b")], ["a", "b"]),  # equal points are both kept
    ([P(300, 9, "c"), P(100, 2, "a"), P(200, 4, "b"), P(150, 8, "x"), P(250, 9.5, "y")],
     ["a", "b", "c"]),  # in order of p99, the dominated left out
    ([P(100, 5, "a"), P(math.nan, 1, "n"), P(None, 1, "m"), {"p99_ms": 1, "name": "k"},
      P(500, None, "z"), P(True, 1, "t")], ["a"]),  # unusable figures are left out
])
def test_the_pareto_frontier_keeps_what_nothing_dominates(points, frontier):
    assert [p["name"] for p in pareto_frontier(points)] == frontier


def test_the_frontier_returns_the_points_given_and_takes_other_keys():
    points = [{"x": 1.0, "y": 2.0}, {"x": 2.0, "y": 1.0}]
    (only,) = pareto_frontier(points, up="x", down="y")
    assert only is points[1]


def test_verdict_counts():
    counts = verdict_counts([{"verdict": "meets"}, {"verdict": "meets"}, {"verdict": "error"}, {}])
    assert counts == {"meets": 2, "fails": 0, "uncertain": 0, "error": 1}


# -- the memory bound, several verdicts in one, and p99's one-sided lower bound --------------
def test_a_memory_bound_meets_or_fails_on_the_figure_and_is_uncertain_without_one():
    from latency_tui.core.frontier import memory_verdict

    assert memory_verdict(4000.0, 5000.0)[0] == "meets"
    assert memory_verdict(5000.0, 5000.0)[0] == "meets"
    verdict, why = memory_verdict(6000.4, 5000.0)
    assert verdict == "fails" and why == "peak device memory 6,000 MB is above 5000 MB"
    verdict, why = memory_verdict(None, 5000.0)
    assert verdict == "uncertain" and "cannot be judged" in why and "CPU" in why


def test_several_verdicts_combine_as_the_worst():
    from latency_tui.core.frontier import combine_verdicts

    assert combine_verdicts([("meets", "a"), ("meets", "b")]) == ("meets", "a; b")
    assert combine_verdicts([("meets", "a"), ("uncertain", "b")]) == ("uncertain", "b")
    assert combine_verdicts([("uncertain", "a"), ("fails", "b")]) == ("fails", "b")
    with pytest.raises(ValueError):
        combine_verdicts([])


def test_p99s_lower_bound_needs_few_samples_and_agrees_with_the_interval():
    from latency_tui.core.stats import order_statistic_interval, quantile_lower_rank

    assert order_statistic_interval(50, 0.99) is None  # too few for both ends...
    assert quantile_lower_rank(50, 0.99, 0.999) == 45  # ...but 5 of 50 above a bound will do
    assert quantile_lower_rank(1, 0.99, 0.999) is None
    for n in (300, 1000, 100_000):  # one-sided at 95 % is the two-sided 90 % interval's low end
        assert quantile_lower_rank(n, 0.99, 0.95) == order_statistic_interval(n, 0.99, 0.90)[0]
