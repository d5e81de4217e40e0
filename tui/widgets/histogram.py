"""The latency histogram, drawn with textual-plotext, with p50 and p99 marked.

Bins are counted from the engine's own sample store (``tui.bins``: a binary search per edge,
where plotext's own ``hist`` bins in Python, too slow for a million samples at a few redraws a
second) and drawn as filled step lines (bars, to the eye, at half plotext's cost for bars), one
per run of non-empty bins: a line drawn at zero would fill the bottom row, and an empty bin must
look empty. The axis holds still while a configuration is measured (``tui.bins``: hysteresis on
the scale, a range that only widens, kept per sample stream). The range stops a little past p99
so that a few slow outliers do not squash the body of the distribution into one bar; the row
under the plot always says how many samples lie beyond it and the slowest one, fitted to the
pane's width. A long tail (p99 several times p50) gets log-spaced bins, said so under the plot.
The markers are vertical lines with their names beside them, so they read without colour. When
there is nothing to plot, the pane says why in words instead of drawing empty axes.
"""

from __future__ import annotations

import weakref
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from latency_tui.core.api import SampleStream
from latency_tui.core.errors import printable

from ..bins import Axis, Bins, histogram_bins
from ..format import fmt_count, fmt_ms


class LatencyHistogram(Vertical):
    """Draws samples (a histogram), a percentile profile (a saved session) or a message."""

    DEFAULT_CSS = """
    LatencyHistogram > #histogram-message {
        height: 1fr; content-align: center middle; color: $text-muted;
    }
    LatencyHistogram > #histogram-tail { height: 1; width: 1fr; text-align: right; display: none; }
    LatencyHistogram > PlotextPlot { display: none; }
    LatencyHistogram.-plot > #histogram-message { display: none; }
    LatencyHistogram.-plot > PlotextPlot { display: block; }
    LatencyHistogram.-plot.-tail > #histogram-tail { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="histogram-message")
        yield PlotextPlot(id="histogram-plot")
        yield Static("", id="histogram-tail")

    _looks: object = None
    #: The axis drawn last and the stream it was drawn for: it carries over only to the same
    #: stream (one configuration); a weak reference, so as not to keep old samples alive.
    _axis: Optional[Axis] = None
    _axis_stream: Any = None

    def on_mount(self) -> None:
        self.border_title = "latency (ms)"

    @property
    def message(self) -> str:
        return str(self.query_one("#histogram-message", Static).content)

    @property
    def tail(self) -> str:
        """The row under the plot: samples beyond the range, the slowest one, the scale."""
        return str(self.query_one("#histogram-tail", Static).content)

    def show_message(self, message: str) -> None:
        self._looks = None
        self.remove_class("-plot", "-tail")
        self.query_one("#histogram-message", Static).update(Text(printable(message)))
        self.border_subtitle = ""

    def _plot(self, tail: bool = False) -> PlotextPlot:
        self.add_class("-plot")
        self.set_class(tail, "-tail")
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear")
        plt.xaxes(True, False)
        plt.yaxes(False, False)
        plt.yticks([])
        return plot

    def _previous_axis(self, stream: SampleStream) -> Optional[Axis]:
        owner = self._axis_stream() if self._axis_stream is not None else None
        return self._axis if owner is stream else None

    def show_stream(self, stream: SampleStream, p50: Optional[float], p99: Optional[float],
                    label: str = "") -> None:
        """Draw the latencies of a sample stream; ``p50`` and ``p99`` in ms are marked."""
        if stream.count == 0:
            self.show_message("waiting for samples")
            return
        width = max(self.content_size.width, 20)
        rows = max(self.content_size.height - 3, 1)  # less the axis, its labels, the tail row
        bins = histogram_bins(stream, bins=max(8, (width - 2) // 2),
                              previous=self._previous_axis(stream))
        self._axis, self._axis_stream = bins.axis, weakref.ref(stream)
        # On log-spaced bins, positions are log10(ms); tick labels stay in ms.
        where = np.log10 if bins.log else (lambda v: v)
        low, high = float(where(bins.low)), float(where(bins.high))
        top = float(bins.counts.max()) or 1.0
        markers = []
        for name, value, colour, height in (("p50", p50, "green", 1.12),
                                            ("p99", p99, "red", 1.02)):
            if value is not None and bins.low <= value <= bins.high:
                x = float(where(value))
                right = label_on_left(name, (x - low) / (high - low) * width, width)
                text = f"{_short(value)} {name}" if right else f"{name} {_short(value)}"
                markers.append((x, text, colour, height, right))
        ticks = np.linspace(low, high, 5)
        labels = [_short(t) for t in (10 ** ticks if bins.log else ticks)]
        self.border_subtitle = _subtitle(stream.count, label, bins.log)
        self.query_one("#histogram-tail", Static).update(Text(tail_note(bins, width)))
        # What would appear on screen: bar heights in half rows, marker columns and texts,
        # the axis. The shape settles while the count grows; then nothing is re-plotted.
        looks = (
            tuple(np.rint(bins.counts / (top * 1.2) * rows * 2).astype(int).tolist()),
            tuple((round((x - low) / (high - low) * width), t) for x, t, _, _, _ in markers),
            tuple(labels), bins.log, width, rows,
        )
        if looks == self._looks and self.has_class("-plot"):
            return
        self._looks = looks
        plot = self._plot(tail=True)
        plt = plot.plt
        for xs, ys in filled_runs(where(bins.edges), bins.counts):
            plt.plot(xs, ys, fillx=True, marker="█", color="cyan")
        plt.xlim(low, high)
        plt.ylim(0, top * 1.2)
        for x, text, colour, height, right in markers:
            plt.vline(x, colour)
            plt.text(text, x, top * height, color=colour, alignment="right" if right else "left")
        plt.xticks(ticks.tolist(), labels)
        plot.refresh()

    def show_percentiles(self, points: Sequence[Tuple[str, float]], label: str = "") -> None:
        """A saved session keeps percentiles, not samples: draw those as bars instead."""
        self._looks = None
        if not points:
            self.show_message("no latency figures")
            return
        plot = self._plot()
        plt = plot.plt
        positions = list(range(1, len(points) + 1))
        values = [value for _, value in points]
        plt.bar(positions, values, width=0.5, marker="█", color="cyan")
        plt.ylim(0, max(values) * 1.2)
        plt.xticks(positions, [name for name, _ in points])
        for x, value in zip(positions, values):
            plt.text(fmt_ms(value), x, value * 1.08, alignment="center")
        self.border_subtitle = f"{label} · percentiles; saved sessions keep no samples"
        plot.refresh()


def label_on_left(name: str, column: float, width: int, room: int = 10) -> bool:
    """Whether a marker's label goes left of its line: p50's does and p99's does not, so that
    the two never run into each other, unless the pane's edge is too close on that side."""
    if name == "p50":
        return column >= room
    return column > width - room


def filled_runs(edges: np.ndarray, counts: np.ndarray) -> List[Tuple[list, list]]:
    """The outline of the bars as step lines, one per run of non-empty bins, to draw filled
    (plotext fills a line in about half the time it takes to draw the same bars). Empty bins
    get no line at all: a line at zero would fill the bottom row under them."""
    out = []
    filled = np.flatnonzero(counts > 0)
    if not filled.size:
        return out
    breaks = np.flatnonzero(np.diff(filled) > 1)
    for first, last in zip(np.r_[filled[0], filled[breaks + 1]], np.r_[filled[breaks], filled[-1]]):
        run_edges = edges[first:last + 2]
        inset = (run_edges[1:] - run_edges[:-1]) * 0.001  # keeps neighbouring bars apart
        xs = np.column_stack([run_edges[:-1] + inset, run_edges[1:] - inset]).ravel()
        out.append((xs.tolist(), np.repeat(counts[first:last + 1], 2).tolist()))
    return out


def tail_note(bins: Bins, width: int) -> str:
    """The row under the plot, the longest form that fits ``width``: how many samples lie
    beyond the right edge ("▶ 41 > 17.5 ms not drawn") and the slowest one always; the scale
    and the samples under the left edge when there is room."""
    high, slowest = _short(bins.high), fmt_ms(bins.max)
    n = fmt_count(bins.above)
    if bins.above:
        noun = "sample" if bins.above == 1 else "samples"
        rights = [f"▶ {n} {noun} > {high} ms not drawn", f"▶ {n} > {high} ms not drawn",
                  f"▶ {n} > {high} ms", f"▶ {n} off chart", f"▶{n}"]
    else:
        rights = ["every sample drawn", ""]
    extras = []
    if bins.log:
        extras.append("log scale")
    if bins.below:
        extras.append(f"◀ {fmt_count(bins.below)} < {_short(bins.low)} ms")
    candidates = []
    for keep in (extras, extras[:1], []):
        candidates.append(" · ".join([*keep, rights[0], f"max {slowest} ms"]))
    for right in rights[1:]:
        candidates.append(" · ".join(filter(None, [right, f"max {slowest} ms"])))
        candidates.append(" ".join(filter(None, [right, f"max {_short(bins.max)}"])))
    for text in candidates:
        if len(text) <= width:
            return text
    return candidates[-1][:width]


def _short(value: float) -> str:
    """Three significant digits: plot labels need not jitter in a last digit (the
    percentile pane has the precise figures)."""
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _subtitle(count: int, label: str, log: bool) -> str:
    parts = [label] if label else []
    parts.append(f"{fmt_count(count)} samples")
    if log:
        parts.append("log scale")
    return " · ".join(parts)
