from __future__ import annotations

import json
import math

import numpy as np
import pytest
from latency_tui.core.histogram import LogHistogram


def lognormal_ns(n: int, seed: int = 0, sigma: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.lognormal(math.log(3e6), sigma, n)).astype(np.int64)


@pytest.mark.parametrize("relative_error", (0.005, 0.01, 0.05))
@pytest.mark.parametrize("q", (0.0, 0.5, 0.9, 0.99, 0.999, 1.0))
@pytest.mark.parametrize("sigma", (0.1, 0.8, 2.0))
def test_percentile_within_relative_error(relative_error: float, q: float, sigma: float) -> None:
    values = lognormal_ns(50_000, seed=1, sigma=sigma)
    hist = LogHistogram(relative_error)
    hist.add(values)
    exact = np.percentile(values, 100 * q)
    assert abs(hist.percentile(q) - exact) <= relative_error * exact * (1 + 1e-9)


@pytest.mark.parametrize("rank", (0, 1, 17, 4999, 9998, 9999))
def test_value_at_rank_within_relative_error(rank: int) -> None:
    values = lognormal_ns(10_000, seed=2)
    hist = LogHistogram()
    hist.add(values)
    exact = np.sort(values)[rank]
    assert hist.value_at_rank(rank) == pytest.approx(exact, rel=hist.relative_error)


def test_exact_moments_and_extremes() -> None:
    values = lognormal_ns(100_001, seed=3)
    hist = LogHistogram()
    for chunk in np.array_split(values, 7):
        hist.add(chunk)
    assert hist.count == values.size
    assert hist.mean == pytest.approx(values.mean(), rel=1e-12)
    assert hist.std == pytest.approx(values.std(), rel=1e-9)  # population std, ddof=0
    assert (hist.min, hist.max) == (values.min(), values.max())


def test_moments_stay_accurate_on_a_large_offset() -> None:
    # A plain sum of squares would lose the 1 ns spread of 1e11 ns values entirely.
    values = 100_000_000_000 + np.tile(np.array([-1, 1], dtype=np.int64), 5000)
    hist = LogHistogram()
    for chunk in np.array_split(values, 10):
        hist.add(chunk)
    assert hist.std == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("values", ([0, -5, 0.25], [5e12, 1e13]))
def test_values_out_of_range_clamp_to_end_buckets(values: list) -> None:
    hist = LogHistogram()
    hist.add(np.array(values))
    nonzero = np.flatnonzero(hist.counts)
    assert nonzero.tolist() in ([0], [hist.counts.size - 1])
    assert hist.count == len(values)
    assert (hist.min, hist.max) == (min(values), max(values))
    assert min(values) <= hist.percentile(0.5) <= max(values)


def test_buckets_span_one_ns_to_max_ns() -> None:
    hist = LogHistogram(0.005, max_ns=1e12)
    gamma = (1 + 0.005) ** 2
    assert gamma ** hist.counts.size > 1e12 >= gamma ** (hist.counts.size - 1)
    assert hist.counts.size < 3000


def test_merge_equals_adding_both() -> None:
    first, second = lognormal_ns(30_000, seed=4), lognormal_ns(20_000, seed=5, sigma=1.5)
    merged, a, b = LogHistogram(), LogHistogram(), LogHistogram()
    merged.add(np.concatenate((first, second)))
    a.add(first)
    b.add(second)
    a.merge(b)
    assert np.array_equal(a.counts, merged.counts)
    assert a.count == merged.count
    assert (a.min, a.max) == (merged.min, merged.max)
    assert a.mean == pytest.approx(merged.mean, rel=1e-12)
    assert a.std == pytest.approx(merged.std, rel=1e-9)
    for q in (0.5, 0.99, 0.999):
        assert a.percentile(q) == merged.percentile(q)


def test_merge_with_empty_either_way() -> None:
    full, empty = LogHistogram(), LogHistogram()
    full.add(lognormal_ns(100))
    before = full.to_dict()
    full.merge(LogHistogram())
    assert full.to_dict() == before
    empty.merge(full)
    assert empty.to_dict() == before


def test_merge_rejects_other_layouts() -> None:
    with pytest.raises(ValueError):
        LogHistogram(0.005).merge(LogHistogram(0.01))


@pytest.mark.parametrize("n", (0, 1, 1000))
def test_dict_round_trip_through_json(n: int) -> None:
    hist = LogHistogram()
    hist.add(lognormal_ns(n, seed=6))
    data = json.loads(json.dumps(hist.to_dict()))
    assert len(data["buckets"]) == np.count_nonzero(hist.counts)  # sparse
    back = LogHistogram.from_dict(data)
    assert back.to_dict() == hist.to_dict()
    assert np.array_equal(back.counts, hist.counts)
    if n:
        assert back.percentile(0.99) == hist.percentile(0.99)
        assert (back.mean, back.std, back.min, back.max) == (hist.mean, hist.std, hist.min,
                                                             hist.max)


def test_from_dict_rejects_inconsistent_counts() -> None:
    hist = LogHistogram()
    hist.add(lognormal_ns(10))
    data = hist.to_dict()
    data["count"] = 11
    with pytest.raises(ValueError):
        LogHistogram.from_dict(data)


def test_memory_is_the_fixed_bucket_array() -> None:
    hist = LogHistogram()
    nbytes, counts = hist.nbytes, hist.counts
    for seed in range(5):
        hist.add(lognormal_ns(200_000, seed=seed, sigma=3.0))
    assert hist.count == 1_000_000
    assert hist.nbytes == nbytes == counts.nbytes
    assert np.shares_memory(hist.counts, counts)  # never reallocated
    assert not hasattr(hist, "__dict__")  # nothing else can grow either


def test_empty_histogram() -> None:
    hist = LogHistogram()
    hist.add(np.array([], dtype=np.int64))
    assert hist.count == 0
    assert all(math.isnan(value) for value in (hist.mean, hist.std, hist.min, hist.max))
    with pytest.raises(ValueError):
        hist.percentile(0.5)
    with pytest.raises(ValueError):
        hist.value_at_rank(0)


def test_counts_are_read_only() -> None:
    with pytest.raises(ValueError):
        LogHistogram().counts[0] = 1


@pytest.mark.parametrize(("relative_error", "max_ns"), [(0.0, 1e12), (1.0, 1e12), (0.005, 1.0)])
def test_rejects_bad_layouts(relative_error: float, max_ns: float) -> None:
    with pytest.raises(ValueError):
        LogHistogram(relative_error, max_ns)
