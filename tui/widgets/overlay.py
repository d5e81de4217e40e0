"""Overlaid latency histograms: one configuration in two or more sessions, on the same bins.

Each session is drawn as the step outline of its histogram in its own colour (braille dots: four
steps a row; filled bars would hide one another), as the share of its own samples per bin, so
that a longer run does not look taller; a run of empty bins gets no line at all, so that the
bottom row stays clear. A legend under the plot names each session's file with its
letter, colour, p50, p99 and sample count, or says in words why a session is not drawn (no
samples stored, not in that session); the subtitle counts the samples beyond the range.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from latency_tui.core.errors import printable

from ..comparemodel import Named, Overlay, Samples, no_samples_reason, overlay
from ..format import fmt_count, fmt_ms

#: The legend's mark for a drawn session, in its colour.
MARK = "━━"
TITLE = "latency (ms), share of each session's samples"


class OverlaidHistograms(Vertical):
    """Draws one configuration of several sessions, or a message."""

    DEFAULT_CSS = """
    OverlaidHistograms > #overlay-message {
        height: 1fr; content-align: center middle; color: $text-muted;
    }
    OverlaidHistograms > PlotextPlot { height: 1fr; display: none; }
    OverlaidHistograms > #overlay-legend { height: auto; }
    OverlaidHistograms.-plot > #overlay-message { display: none; }
    OverlaidHistograms.-plot > PlotextPlot { display: block; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="overlay-message")
        yield PlotextPlot(id="overlay-plot")
        yield Static("", id="overlay-legend")

    _last: Optional[tuple] = None
    _drawn_width = 0

    def on_mount(self) -> None:
        self.border_title = TITLE

    def on_resize(self) -> None:
        """Bins follow the pane's width: draw again at the new one."""
        if self._last is not None and self.content_size.width != self._drawn_width:
            self.show(*self._last)

    @property
    def legend(self) -> str:
        return str(self.query_one("#overlay-legend", Static).content)

    @property
    def message(self) -> str:
        return str(self.query_one("#overlay-message", Static).content)

    def show_message(self, message: str) -> None:
        self._last = None
        self.border_title = TITLE
        self.remove_class("-plot")
        self.query_one("#overlay-message", Static).update(Text(printable(message)))
        self.query_one("#overlay-legend", Static).update("")
        self.border_subtitle = ""

    def show(self, sessions: Sequence[Named], results: Sequence[object],
             samples: Sequence[Optional[Samples]], title: str = "") -> None:
        """Draw ``samples`` (one per session, None where it has none) for ``results``."""
        self._last = (sessions, results, samples, title)
        self.border_title = f"{title} · {TITLE}" if title else TITLE
        self._drawn_width = self.content_size.width
        width = max(self.content_size.width, 20)
        drawn = overlay(samples, bins=max(8, (width - 2) // 2))
        legend = self._legend(sessions, results, samples)
        if drawn is None:
            self.remove_class("-plot")
            self.query_one("#overlay-message", Static).update(Text(printable(
                f"{title}: no session has samples of it to draw".lstrip(": "))))
            self.query_one("#overlay-legend", Static).update(legend)
            self.border_subtitle = ""
            return
        self.add_class("-plot")
        self.query_one("#overlay-legend", Static).update(legend)
        self.border_subtitle = subtitle(sessions, drawn)
        self._draw(sessions, drawn)

    def _draw(self, sessions: Sequence[Named], drawn: Overlay) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.theme("clear")
        plt.xaxes(True, False)
        plt.yaxes(False, False)
        plt.yticks([])
        where = np.log10 if drawn.log else (lambda v: v)
        xs_edges = where(drawn.edges)
        top = max(float(s.max()) for s in drawn.shares if s is not None) or 1.0
        for named, shares in zip(sessions, drawn.shares):
            if shares is not None:
                for xs, ys in outlines(xs_edges, shares):
                    plt.plot(xs, ys, marker="braille", color=named.colour)
        low, high = float(xs_edges[0]), float(xs_edges[-1])
        plt.xlim(low, high)
        plt.ylim(0, top * 1.15)
        ticks = np.linspace(low, high, 5)
        plt.xticks(ticks.tolist(), [short(t) for t in (10 ** ticks if drawn.log else ticks)])
        plot.refresh()

    def _legend(self, sessions: Sequence[Named], results: Sequence[object],
                samples: Sequence[Optional[Samples]]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (named, result, stored) in enumerate(zip(sessions, results, samples)):
            if i:
                text.append("\n")
            if stored is None:
                text.append(" " * (len(MARK) + 1))
                text.append(f"{named.letter} {named.name}", "bold")
                text.append(f": {no_samples_reason(result)}", "dim")  # type: ignore[arg-type]
                continue
            text.append(f"{MARK} ", named.colour)
            text.append(f"{named.letter} {named.name}", "bold")
            text.append(f"  p50 {fmt_ms(stored.quantile(0.5))} · p99 "
                        f"{fmt_ms(stored.quantile(0.99))} ms · {fmt_count(stored.total)} samples")
        return text


def outlines(edges: np.ndarray, shares: np.ndarray) -> List[Tuple[list, list]]:
    """The step outline of a histogram, one line per run of non-empty bins: up from zero at
    the run's first edge, along each bin's top, down to zero at its last edge."""
    out = []
    filled = np.flatnonzero(shares > 0)
    if not filled.size:
        return out
    breaks = np.flatnonzero(np.diff(filled) > 1)
    for first, last in zip(np.r_[filled[0], filled[breaks + 1]], np.r_[filled[breaks], filled[-1]]):
        xs = np.repeat(edges[first:last + 2], 2)
        ys = np.r_[0.0, np.repeat(shares[first:last + 1], 2), 0.0]
        out.append((xs.tolist(), ys.tolist()))
    return out


def subtitle(sessions: Sequence[Named], drawn: Overlay) -> str:
    parts: List[str] = []
    if drawn.log:
        parts.append("log scale")
    for mark, where, edge, counts in (("◀", "under", drawn.low, drawn.below),
                                      ("▶", "beyond", drawn.high, drawn.above)):
        named = [f"{n.letter} {fmt_count(c)}" for n, c in zip(sessions, counts) if c]
        if named:
            parts.append(f"{mark} {where} {short(edge)} ms: {', '.join(named)}")
    if not any(drawn.above) and not any(drawn.below):
        parts.append("every sample drawn")
    return " · ".join(parts)


def short(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"
