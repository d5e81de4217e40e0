"""p99 and throughput over the run, one sparkline each, with the latest and extreme values
written beside them so that the shape reads without colour."""

from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from ..format import fmt_ms, fmt_rate


class Timeline(Vertical):
    DEFAULT_CSS = """
    Timeline { height: auto; }
    Timeline Horizontal { height: 1; }
    Timeline .name { width: 11; color: $text-muted; }
    Timeline .value { width: 21; padding-left: 1; }
    Timeline Sparkline { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("p99 ms", classes="name")
            yield Sparkline([], summary_function=max, id="p99-line")
            yield Label("", id="p99-value", classes="value")
        with Horizontal():
            yield Label("samples/s", classes="name")
            yield Sparkline([], summary_function=_mean, id="rate-line")
            yield Label("", id="rate-value", classes="value")

    def on_mount(self) -> None:
        self.border_title = "p99 and throughput over the run"

    def show(self, p99_ms: Sequence[float], samples_per_s: Sequence[float], subtitle: str = "",
             ) -> None:
        """Draw two series of equal length; the app picks the time base (windows or configs)."""
        shown = (tuple(p99_ms), tuple(samples_per_s), subtitle)
        if shown == getattr(self, "_shown", None):
            return
        self._shown = shown
        self.query_one("#p99-line", Sparkline).data = list(p99_ms)
        self.query_one("#rate-line", Sparkline).data = list(samples_per_s)
        # Fixed-width labels: repaint without a layout pass.
        self.query_one("#p99-value", Label).update(
            f"{fmt_ms(p99_ms[-1])} (max {fmt_ms(max(p99_ms))})" if p99_ms else "-",
            layout=False,
        )
        self.query_one("#rate-value", Label).update(
            f"{fmt_rate(samples_per_s[-1])} (max {fmt_rate(max(samples_per_s))})"
            if samples_per_s else "-", layout=False,
        )
        self.border_subtitle = subtitle


def _mean(values: Sequence[float]) -> float:
    """Throughput averaged within a column (the sparkline's default, max, would flatter it)."""
    return sum(values) / len(values)
