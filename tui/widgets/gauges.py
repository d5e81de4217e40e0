"""Percentile readouts with their confidence intervals, throughput, sample count, cold start.

A percentile without an interval says why ("few samples") rather than showing a bound it
does not have; a live figure is marked "live" until the engine's final summary replaces it,
and one read from log-bucketed counts carries its relative error ("live ±0.5%").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from rich.text import Text
from textual.widgets import Static

from latency_tui.core.api import PERCENTILES, LatencySummary, Throughput
from latency_tui.core.errors import single_line

from ..format import fmt_count, fmt_interval, fmt_ms, fmt_rate


@dataclass(frozen=True)
class GaugeData:
    summary: Optional[LatencySummary] = None
    throughput: Optional[Throughput] = None
    samples: int = 0
    elapsed_s: float = 0.0
    cold_start_ms: Optional[float] = None
    warmup_iterations: Optional[int] = None
    warmup_stable: Optional[bool] = None
    final: bool = False
    status: str = ""
    error: Optional[str] = None


class PercentileGauges(Static):
    DEFAULT_CSS = """
    PercentileGauges { padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.border_title = "percentiles (ms)"
        self.show(GaugeData())

    def show(self, data: GaugeData) -> None:
        if data == getattr(self, "_shown", None):
            return
        self._shown = data
        self.border_title = gauges_title(data)
        self.border_subtitle = data.status
        self.update(render_gauges(data), layout=False)  # a fixed-size pane: repaint only


def gauges_title(data: GaugeData) -> str:
    summary = data.summary
    if summary is None:
        return "percentiles (ms)"
    kind = "final" if data.final else "live"
    if not summary.exact:  # read from log buckets: each percentile within this error
        kind += f" ±{summary.relative_error:.1%}"
    title = f"percentiles ms · {kind} · {summary.confidence:.0%} CI"
    return title if len(title) <= 32 else f"ms · {kind} · {summary.confidence:.0%} CI"


def render_gauges(data: GaugeData) -> Text:
    # Padded lines of text rather than a Rich table: this pane redraws twice a second during
    # a run, and laying out a table costs several times as much.
    summary = data.summary
    lines: List[Text] = []
    for key, _ in PERCENTILES:
        line = Text(f"{key:<6}", style="bold")
        if summary is None or key not in summary.percentiles:
            line.append(f"{'-':>6}", "not bold")
        else:
            interval = summary.intervals.get(key)
            line.append(f"{fmt_ms(summary.percentiles[key]):>6} ", "not bold")
            line.append(fmt_interval(interval) if interval else "(few samples)", "dim not bold")
        lines.append(line)
    if data.error:
        lines.append(Text(f"failed: {single_line(data.error)}", style="bold red"))
    throughput = data.throughput
    if throughput is not None:
        lines.append(Text.assemble((fmt_rate(throughput.inferences_per_s), "bold"), " inf/s  ",
                                   (fmt_rate(throughput.samples_per_s), "bold"), " samples/s"))
    else:
        lines.append(Text("- inf/s  - samples/s", style="dim"))
    count = Text.assemble((fmt_count(data.samples), "bold"), " samples")
    if data.elapsed_s:
        count.append(f" in {data.elapsed_s:.1f} s", "dim")
    lines.append(count)
    if data.cold_start_ms is not None:
        lines.append(Text.assemble("cold start ", (fmt_ms(data.cold_start_ms), "bold"), " ms"))
    if data.warmup_iterations is not None:
        stable = "stable" if data.warmup_stable else "NOT stable"
        lines.append(Text(f"warm-up {fmt_count(data.warmup_iterations)} it, {stable}",
                          style="" if data.warmup_stable else "bold yellow"))
    if summary is not None:
        lines.append(Text(f"min {fmt_ms(summary.min)}  mean {fmt_ms(summary.mean)}  "
                          f"max {fmt_ms(summary.max)}", style="dim"))
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
