"""The one sample store (engine and TUI alike) and the per-second timeline built from it."""

from __future__ import annotations

import numpy as np
import pytest

from latency_tui.core.stats import percentile, summarize
from latency_tui.core.streams import Block, ConfigStreams, SampleStream, TimelineBuilder

RNG = np.random.default_rng(7)


def lognormal_ns(n: int, median_us: float = 100.0) -> np.ndarray:
    return (RNG.lognormal(np.log(median_us * 1000), 0.3, n)).astype(np.int64)


@pytest.mark.parametrize("parts", [1, 3, 40])
def test_exact_stream_sorts_lazily_and_summarises_like_the_pure_function(parts):
    values = lognormal_ns(12_000)
    stream = SampleStream(cap=100_000)
    for chunk in np.array_split(values, parts):
        stream.add(chunk)
    assert stream.exact and stream.count == values.size
    assert np.array_equal(stream.sorted_ns(), np.sort(values))
    assert stream.summary() == summarize(values)


def test_summary_is_recomputed_only_when_samples_arrive():
    stream = SampleStream()
    stream.add(lognormal_ns(100))
    first = stream.summary()
    assert stream.summary() is first
    stream.add(lognormal_ns(10))
    assert stream.summary() is not first and stream.summary().count == 110


def test_past_the_cap_the_histogram_takes_over_within_its_error():
    values = lognormal_ns(30_000)
    stream = SampleStream(cap=5_000)
    for chunk in np.array_split(values, 10):
        stream.add(chunk)
    assert not stream.exact and stream.count == 30_000
    summary = stream.summary()
    assert summary.exact is False and summary.relative_error == 0.005
    exact = summarize(values)
    for key in ("p50", "p90", "p99"):
        assert summary[key] == pytest.approx(exact[key], rel=0.006)
    assert summary.mean == pytest.approx(exact.mean, rel=1e-9)
    assert stream.sorted_ns().size == 0  # no exact samples kept past the cap


@pytest.mark.parametrize("cap", [1_000_000, 500])
def test_bin_counts_and_the_tail_above(cap):
    values = lognormal_ns(5_000)
    stream = SampleStream(cap=cap)
    stream.add(values)
    edges = np.linspace(values.min(), np.percentile(values, 99), 31).astype(np.int64)
    counts = stream.bin_counts(edges)
    expected, _ = np.histogram(values, bins=edges)
    if stream.exact:
        assert counts.tolist() == expected.tolist()
        assert stream.above(edges[-1]) == int((values > edges[-1]).sum())
    else:  # from bucket midpoints: each sample may move to a neighbouring bin, no further
        assert abs(int(counts.sum()) - int(expected.sum())) < 0.02 * values.size
        assert abs(stream.above(edges[-1]) - int((values > edges[-1]).sum())) < 0.01 * values.size


def test_quantiles_match_the_linear_definition():
    values = lognormal_ns(999)
    stream = SampleStream()
    stream.add(values)
    ordered = np.sort(values)
    assert stream.quantiles([0.5, 0.99]) == [percentile(ordered, 0.5), percentile(ordered, 0.99)]


def synthetic_run(seconds: int = 4, per_second: int = 3000):
    """Samples whose end times spread over ``seconds``, with a slower second in the middle."""
    ends = np.sort(RNG.integers(0, seconds * 10**9, seconds * per_second))
    latency = lognormal_ns(ends.size)
    latency[(ends >= 2 * 10**9) & (ends < 3 * 10**9)] *= 3
    return ends, latency


def test_timeline_counts_are_exact_and_percentiles_within_their_error():
    ends, latency = synthetic_run()
    builder = TimelineBuilder()
    for part in np.array_split(np.arange(ends.size), 17):
        builder.add(ends[part], latency[part])
    timeline = builder.build()
    buckets = ends // 10**9
    assert list(timeline.inferences) == np.bincount(buckets).tolist()
    for second in range(4):
        mine = latency[buckets == second]
        assert timeline.p99_ms[second] == pytest.approx(np.percentile(mine, 99) / 1e6, rel=0.011)
        assert timeline.p50_ms[second] == pytest.approx(np.percentile(mine, 50) / 1e6, rel=0.011)
        assert timeline.max_ms[second] == mine.max() / 1e6
    assert timeline.p50_ms[2] > 2 * timeline.p50_ms[1]  # the slow second shows


def test_timeline_does_not_depend_on_the_order_samples_arrive_in():
    ends, latency = synthetic_run()
    shuffled = RNG.permutation(ends.size)
    in_order, out_of_order = TimelineBuilder(), TimelineBuilder()
    in_order.add(ends, latency)
    for part in np.array_split(shuffled, 9):  # copies delivering late and interleaved
        out_of_order.add(ends[part], latency[part])
    assert in_order.build() == out_of_order.build()


def test_timeline_pads_trailing_seconds_and_marks_empty_ones():
    builder = TimelineBuilder(bucket_s=0.5)
    builder.add(np.array([100, 1_600_000_000]), np.array([1000, 2000]))
    timeline = builder.build(buckets=5)
    assert timeline.inferences == (1, 0, 0, 1, 0)
    assert timeline.p50_ms[1] is None and timeline.p99_ms[3] == pytest.approx(0.002, rel=0.01)


def test_config_streams_split_a_pipeline_block_into_its_steps():
    start = np.array([10, 110, 210])
    block = Block(start_ns=start, end_ns=start + 50, pre_start_ns=start - 10,
                  post_end_ns=start + 70)
    streams = ConfigStreams()
    streams.add(block)
    assert streams.count == 3
    assert streams.latency.summary()["p50"] == pytest.approx(50 / 1e6)
    assert set(streams.stages) == {"end_to_end", "preprocess", "postprocess"}
    assert streams.stages["end_to_end"].summary()["p50"] == pytest.approx(80 / 1e6)
    assert streams.stages["postprocess"].summary()["p50"] == pytest.approx(20 / 1e6)


def test_device_times_get_a_stream_of_their_own():
    streams = ConfigStreams()
    streams.add(Block(np.array([0, 100]), np.array([90, 200]), device_ns=np.array([80, 85])))
    assert streams.device.summary().max == pytest.approx(85 / 1e6)


def test_blocks_concatenate_and_shift():
    a = Block(np.array([5]), np.array([9]))
    b = Block(np.array([15, 25]), np.array([19, 29]))
    joined = Block.concat([a, Block.empty(), b]).shifted(5)
    assert joined.start_ns.tolist() == [0, 10, 20] and joined.latency_ns.tolist() == [4, 4, 4]
