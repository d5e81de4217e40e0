"""The latency histogram cannot mislead: empty bins are drawn empty, the axis holds still while
one configuration is measured (hysteresis on the scale, a range that only widens), and the
samples beyond the range are always named with the slowest one, at every pane width."""

from __future__ import annotations

import numpy as np
import pytest
from textual.app import App, ComposeResult

from latency_tui.core.api import SampleStream
from latency_tui.tui.bins import (
    LOG_BINS_RATIO, LOG_OFF_RATIO, LOG_ON_RATIO, Bins, choose_log, histogram_bins,
    next_axis, nice_range,
)
from latency_tui.tui.widgets.histogram import LatencyHistogram, filled_runs, tail_note

from .conftest import build_app, finish_run


def stream_of(ms, cap=10**9) -> SampleStream:
    stream = SampleStream(cap)
    stream.add(np.round(np.asarray(ms, dtype=float) * 1e6).astype(np.int64))
    return stream


# -- the scale: hysteresis -------------------------------------------------------------------
@pytest.mark.parametrize(("ratio", "previous", "log"), [
    (LOG_BINS_RATIO + 0.01, None, True),  # a configuration's first draw: the plain rule
    (LOG_BINS_RATIO - 0.01, None, False),
    (LOG_BINS_RATIO + 0.01, False, False),  # the rule's edge no longer flips a drawn axis
    (LOG_BINS_RATIO - 0.01, True, True),
    (LOG_ON_RATIO + 0.01, False, True),  # a tail clearly grown or shrunk still does
    (LOG_OFF_RATIO - 0.01, True, False),
])
def test_the_scale_changes_only_past_the_hysteresis_band(ratio, previous, log):
    assert choose_log(10.0, 10.0 * ratio, 5.0, previous) is log


def test_a_p99_hovering_at_three_times_p50_keeps_one_scale():
    """The user's report: p50 constant, p99 either side of 3 x p50, redraw after redraw."""
    previous = None
    scales = []
    for p99 in (30.5, 29.5, 30.2, 29.8, 30.4, 29.6):
        previous = choose_log(10.0, p99, 8.0, previous)
        scales.append(previous)
    assert len(set(scales)) == 1


def test_no_log_scale_without_a_positive_range():
    assert not choose_log(10.0, 100.0, 0.0, None)
    assert not choose_log(0.0, 100.0, 1.0, True)


# -- the range: only widens within a configuration ----------------------------------------
@pytest.mark.parametrize("log", (False, True))
@pytest.mark.parametrize("seed", range(5))
def test_nice_ranges_hold_still_when_niced_again(log, seed):
    rng = np.random.default_rng(seed)
    for low in rng.uniform(0.01, 50, 40):
        high = low * rng.uniform(1.01, 20)
        nice = nice_range(low, high, log)
        assert nice[0] <= low and high <= nice[1]
        assert nice_range(*nice, log) == pytest.approx(nice, rel=1e-12)


def test_the_axis_only_widens_and_a_contained_range_keeps_it():
    axis = next_axis(None, 9.3, 14.2, False)
    targets = [(9.5, 14.0), (9.1, 14.1), (9.4, 17.3), (9.8, 13.0), (8.7, 15.0)]
    for low, high in targets:
        widened = next_axis(axis, low, high, False)
        assert widened.low <= min(axis.low, low) and widened.high >= max(axis.high, high)
        if axis.low <= low and high <= axis.high:
            assert widened is axis  # nothing moves: the same labels at the same columns
        axis = widened
    fresh = next_axis(axis, 9.5, 14.0, True)  # a change of scale starts afresh
    assert fresh.log and fresh.high < axis.high


def test_histogram_bins_follow_the_previous_axis_of_the_same_configuration():
    rng = np.random.default_rng(1)
    wide = stream_of(np.concatenate([rng.normal(10, 0.3, 5000), rng.uniform(12, 16, 200)]))
    first = histogram_bins(wide, 30)
    narrow = stream_of(rng.normal(10, 0.3, 5000))
    again = histogram_bins(narrow, 30, previous=first.axis)
    assert (again.low, again.high, again.log) == (first.low, first.high, first.log)
    assert histogram_bins(narrow, 30).high < first.high  # a new configuration starts afresh


def test_counts_add_up_with_the_samples_off_either_edge():
    rng = np.random.default_rng(3)
    ms = np.concatenate([rng.normal(10, 0.5, 10000), [0.5] * 3, [500.0] * 7])
    bins = histogram_bins(stream_of(ms), 20)
    assert bins.above >= 7 and bins.below >= 3 and bins.max == pytest.approx(500.0)
    assert bins.counts.sum() + bins.above + bins.below == ms.size


# -- empty bins are drawn empty --------------------------------------------------------------
@pytest.mark.parametrize("counts", [
    [0, 0, 5, 40, 100, 0, 0, 3, 0, 1],
    [7, 0, 0, 0, 0, 0, 0, 0, 0, 9],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    [0] * 10,
])
def test_empty_bins_get_no_line(counts):
    counts = np.asarray(counts)
    edges = np.arange(counts.size + 1, dtype=float)
    covered = np.zeros(counts.size, dtype=bool)
    for xs, ys in filled_runs(edges, counts):
        assert min(ys) > 0  # no point at zero: plotext would fill the bottom row there
        first, last = int(np.floor(min(xs))), int(np.floor(max(xs)))
        covered[first:last + 1] = True
    assert (covered == (counts > 0)).all()


class HistogramApp(App):
    def compose(self) -> ComposeResult:
        yield LatencyHistogram(id="histogram")


def plot_rows(histogram: LatencyHistogram):
    from textual_plotext import PlotextPlot

    return histogram.query_one(PlotextPlot).render().plain.splitlines()


async def test_a_gap_between_two_modes_is_drawn_empty():
    """Two modes far apart: the bottom row of the plot must be blank between them (plotext
    filled it under every empty bin)."""
    rng = np.random.default_rng(0)
    stream = stream_of(np.concatenate([rng.normal(10, 0.2, 3000), rng.normal(20, 0.2, 3000)]))
    app = HistogramApp()
    async with app.run_test(size=(60, 16)) as pilot:
        histogram = app.query_one(LatencyHistogram)
        histogram.show_stream(stream, 15.0, 20.4)
        await pilot.pause()
        rows = plot_rows(histogram)
        axis = next(i for i, row in enumerate(rows) if "┬" in row)
        bottom = rows[axis - 1].replace("│", " ")
        filled = [i for i, ch in enumerate(bottom) if ch == "█"]
        assert filled, rows
        gaps = np.diff(filled)
        assert gaps.max() > 10, "\n".join(rows)  # the empty stretch between the modes


# -- the clipped tail is always named -------------------------------------------------------
def tail_bins(above=41, below=0, log=False, high=17.5, top=1234.5) -> Bins:
    edges = np.linspace(5, high, 11)
    return Bins(edges, edges[:-1], np.ones(10, dtype=np.int64), 5.0, high, above, log, below,
                top)


@pytest.mark.parametrize("width", (20, 30, 40, 50, 60, 130))
@pytest.mark.parametrize("bins", [tail_bins(), tail_bins(12345, 3, True), tail_bins(0, 0)])
def test_the_tail_note_fits_and_always_names_the_count_and_the_max(width, bins):
    text = tail_note(bins, width)
    assert len(text) <= width
    if bins.above:
        assert f"▶ {bins.above:,}" in text or f"▶{bins.above:,}" in text
    assert "max" in text and ("1,234" in text or "1,235" in text)


def test_wide_panes_say_more():
    bins = tail_bins(41, 3, True)
    assert tail_note(bins, 130) == ("log scale · ◀ 3 < 5 ms · ▶ 41 samples > 17.5 ms not drawn"
                                    " · max 1,234 ms")
    assert tail_note(tail_bins(0), 130) == "every sample drawn · max 1,234 ms"


@pytest.mark.parametrize("width", (40, 50, 130))  # the pane at 80x24, 120x40, 200x60
async def test_the_clipped_tail_is_on_screen_in_full(width):
    """At 120x40 the "N samples not drawn" note sat at the end of the border subtitle and
    was cut off; the tail row must show the count and the maximum whole."""
    rng = np.random.default_rng(0)
    stream = stream_of(np.concatenate([rng.normal(10, 0.5, 10000), [80.0] * 40, [97.25]]))
    app = HistogramApp()
    async with app.run_test(size=(width, 14)) as pilot:
        histogram = app.query_one(LatencyHistogram)
        histogram.show_stream(stream, 10.0, 11.2, "batch 8, 2 x 2")
        await pilot.pause()
        tail = histogram.query_one("#histogram-tail")
        assert tail.display and tail.region.height == 1
        shown = "".join(s.text for s in tail.render_lines(tail.region.reset_offset)).strip()
        assert shown == histogram.tail
        assert "▶" in shown and "41" in shown and "97.25" in shown


async def test_redraws_of_one_configuration_keep_the_axis_a_new_one_resets_it():
    rng = np.random.default_rng(5)
    app = HistogramApp()
    async with app.run_test(size=(60, 16)) as pilot:
        histogram = app.query_one(LatencyHistogram)
        stream = stream_of(np.concatenate([rng.normal(10, 0.3, 2000), rng.uniform(13, 18, 60)]))
        histogram.show_stream(stream, 10.0, 16.0)
        first = histogram._axis
        stream.add((rng.normal(10, 0.3, 20000) * 1e6).astype(np.int64))  # the tail thins out
        histogram.show_stream(stream, 10.0, 11.0)
        assert histogram._axis == first  # the range did not shrink under the user's eyes
        other = stream_of(rng.normal(10, 0.3, 2000))
        histogram.show_stream(other, 10.0, 10.7)
        assert histogram._axis.high < first.high
        await pilot.pause()


async def test_the_app_shows_the_tail_row_under_a_finished_run(tmp_path):
    app = build_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        histogram = app.query_one(LatencyHistogram)
        tail = histogram.query_one("#histogram-tail")
        assert tail.display and "max" in histogram.tail
        assert len(histogram.tail) <= tail.region.width
        assert "not drawn" not in str(histogram.border_subtitle)
