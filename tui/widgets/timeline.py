"""p99 and throughput over the run, one sparkline each, with the latest and extreme values
written beside them so that the shape reads without colour; below them, only when some second
has one, a row of marks at the seconds in which the host was busy (``details["noise"]["seconds"]``),
column for column with the sparklines."""

from __future__ import annotations

from fractions import Fraction
from typing import List, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from ..format import fmt_ms, fmt_rate


class Timeline(Vertical):
    DEFAULT_CSS = """
    Timeline { height: auto; }
    Timeline Horizontal { height: 1; }
    Timeline .name { width: 11; color: $text-muted; }
    Timeline .value { width: 21; padding-left: 1; }
    Timeline Sparkline { width: 1fr; }
    Timeline BusyMarks { width: 1fr; height: 1; color: $warning; }
    Timeline #busy-row { display: none; }
    Timeline.busy #busy-row { display: block; }
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
        with Horizontal(id="busy-row"):
            yield Label("host busy", classes="name")
            yield BusyMarks(id="busy-line")
            yield Label("", id="busy-value", classes="value")

    def on_mount(self) -> None:
        self.border_title = "p99 and throughput over the run"

    def show(self, p99_ms: Sequence[float], samples_per_s: Sequence[float], subtitle: str = "",
             busy: Sequence[bool] = ()) -> None:
        """Draw two series of equal length; the app picks the time base (windows or configs).
        ``busy`` (as long, or empty) says of each second whether the host was busy in it."""
        busy = tuple(bool(b) for b in busy)
        shown = (tuple(p99_ms), tuple(samples_per_s), subtitle, busy)
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
        marked = sum(busy)
        if bool(marked) != self.has_class("busy"):
            self.set_class(bool(marked), "busy")
            # One more row while there are marks (the app's stylesheet sizes the pane for two);
            # without marks, the stylesheet's height again, so the pane draws as before.
            self.styles.height = "auto" if marked else None
        self.query_one(BusyMarks).busy = busy if marked else ()
        self.query_one("#busy-value", Label).update(
            f"{marked} of {len(busy)} s" if marked else "", layout=False)


class BusyMarks(Widget):
    """One row: a mark under each sparkline column that holds a busy second (the sparkline's
    own partition of the seconds into columns), blank elsewhere."""

    MARK = "\u2580"  # upper half block, just under the bars above

    def __init__(self, *, id: str = "") -> None:
        super().__init__(id=id or None)
        self._busy: tuple = ()

    @property
    def busy(self) -> tuple:
        return self._busy

    @busy.setter
    def busy(self, value: Sequence[bool]) -> None:
        value = tuple(value)
        if value != self._busy:
            self._busy = value
            self.refresh()

    def columns(self, width: int) -> List[bool]:
        """Whether each of ``width`` columns is marked, as ``Sparkline`` partitions its data."""
        return marked_columns(self._busy, width)

    def render(self) -> Text:
        width = self.size.width
        return Text("".join(self.MARK if m else " " for m in self.columns(width)),
                    no_wrap=True)


def marked_columns(busy: Sequence[bool], width: int) -> List[bool]:
    """Textual's sparkline partitions ``n`` values into ``width`` buckets (``Fraction(n, width)``
    each, empty ones dropped) and draws column ``c`` from bucket ``int(c * buckets / width)``:
    the same here, a column marked when any second of its bucket is."""
    n = len(busy)
    if width <= 0 or n == 0:
        return [False] * max(0, width)
    if n == 1:
        return [busy[0]] * width
    step = Fraction(n, width)
    buckets = [b for b in (busy[int(step * i):int(step * (i + 1))] for i in range(width)) if b]
    per, at, out = len(buckets) / width, 0.0, []
    for _ in range(width):  # the sparkline's own float steps, so that columns match exactly
        out.append(any(buckets[int(at)]))
        at += per
    return out


def _mean(values: Sequence[float]) -> float:
    """Throughput averaged within a column (the sparkline's default, max, would flatter it)."""
    return sum(values) / len(values)
