"""The latency histogram, drawn with textual-plotext, with p50 and p99 marked.

Bins are counted from the engine's own sample store (``tui.bins``: a binary search per edge,
where plotext's own ``hist`` bins in Python, too slow for a million samples at a few redraws a
second) and drawn as a filled step line (bars, to the eye, at
half plotext's cost for bars). The range stops a little past p99 so that a few slow
outliers do not squash the body of the distribution into one bar; how many samples lie
beyond it is written under the plot. A long tail (p99 several times p50) gets
log-spaced bins, said so under the plot. The markers are vertical lines with their
names beside them, so they read without colour. When there is nothing to plot, the pane says
why in words instead of drawing empty axes.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from latency_tui.core.api import SampleStream
from latency_tui.core.errors import printable

from ..bins import histogram_bins
from ..format import fmt_count, fmt_ms


class LatencyHistogram(Vertical):
    """Draws samples (a histogram), a percentile profile (a saved session) or a message."""

    DEFAULT_CSS = """
    LatencyHistogram > Static { height: 1fr; content-align: center middle; color: $text-muted; }
    LatencyHistogram > PlotextPlot { display: none; }
    LatencyHistogram.-plot > Static { display: none; }
    LatencyHistogram.-plot > PlotextPlot { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="histogram-message")
        yield PlotextPlot(id="histogram-plot")

    _looks: object = None

    def on_mount(self) -> None:
        self.border_title = "latency (ms)"

    @property
    def message(self) -> str:
        return str(self.query_one("#histogram-message", Static).content)

    def show_message(self, message: str) -> None:
        self._looks = None
        self.remove_class("-plot")
        self.query_one("#histogram-message", Static).update(Text(printable(message)))
        self.border_subtitle = ""

    def _plot(self) -> PlotextPlot:
        self.add_class("-plot")
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear")
        plt.xaxes(True, False)
        plt.yaxes(False, False)
        plt.yticks([])
        return plot

    def show_stream(self, stream: SampleStream, p50: Optional[float], p99: Optional[float],
                    label: str = "") -> None:
        """Draw the latencies of a sample stream; ``p50`` and ``p99`` in ms are marked."""
        if stream.count == 0:
            self.show_message("waiting for samples")
            return
        width = max(self.content_size.width, 20)
        rows = max(self.content_size.height - 2, 1)  # less the axis and its labels
        bins = histogram_bins(stream, bins=max(8, (width - 2) // 2))
        # On log-spaced bins, positions are log10(ms); tick labels stay in ms.
        where = np.log10 if bins.log else (lambda v: v)
        low, high = float(where(bins.low)), float(where(bins.high))
        top = float(bins.counts.max()) or 1.0
        markers = []
        for name, value, colour, height in (("p50", p50, "green", 1.12),
                                            ("p99", p99, "red", 1.02)):
            if value is not None and bins.low <= value <= bins.high:
                x = float(where(value))
                right = (x - low) > 0.6 * (high - low)  # label left of the line near the edge
                text = f"{_short(value)} {name}" if right else f"{name} {_short(value)}"
                markers.append((x, text, colour, height, right))
        ticks = np.linspace(low, high, 5)
        labels = [_short(t) for t in (10 ** ticks if bins.log else ticks)]
        self.border_subtitle = _subtitle(stream.count, bins.above, bins.high, label, bins.log)
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
        plot = self._plot()
        plt = plot.plt
        xs, ys = _steps(where(bins.edges), bins.counts)
        plt.plot(xs, ys, fillx=True, marker="█", color="cyan")
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


def _steps(edges: np.ndarray, counts: np.ndarray) -> Tuple[list, list]:
    """The outline of the bars as a step line, to draw filled: plotext fills a line in
    about half the time it takes to draw the same bars."""
    inset = (edges[1:] - edges[:-1]) * 0.001  # keeps neighbouring bars' corners apart
    xs = np.column_stack([edges[:-1] + inset, edges[1:] - inset]).ravel()
    ys = np.repeat(counts, 2)
    return xs.tolist(), ys.tolist()


def _short(value: float) -> str:
    """Three significant digits: plot labels need not jitter in a last digit (the
    percentile pane has the precise figures)."""
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _subtitle(count: int, above: int, high: float, label: str, log: bool) -> str:
    parts = [label] if label else []
    parts.append(f"{fmt_count(count)} samples")
    if log:
        parts.append("log scale")
    if above:
        parts.append(f"{fmt_count(above)} > {fmt_ms(high)} ms not drawn")
    return " · ".join(parts)
