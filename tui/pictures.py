"""A saved session as a picture: ``latency-tui export SESSION --format svg``.

One SVG, written by hand (no new dependency; crisp at any size; its text stays text), with a
row per configuration in the results table's order (``#1`` is the table's first row):

- **the latency histogram**, from the samples the session stores (``latency_samples``), binned
  on the TUI's axis rules (``tui.bins``: from the 0.1th percentile to a little past p99,
  log-spaced bins for a long tail), p50 and p99 marked with their names beside them, and the
  samples beyond the range counted under it. A session from before samples were stored keeps
  only percentiles: those are drawn as bars instead, and the panel's title says so;
- **the timeline**: p50 (dashed) and p99 (solid) of each second, and below them the samples per
  second of the same seconds, from the session's per-second timeline.

A configuration that failed gets both panels with the reason in words. Every bar carries its
range and count (``data-*`` attributes and a tooltip), so that the picture can be checked
against the data. Each configuration is a ``<g class="config">`` holding one
``<g class="histogram">`` and one ``<g class="timeline">``.
"""

from __future__ import annotations

import math
import re
from typing import Any, List, NamedTuple, Optional, Sequence
from xml.sax.saxutils import escape

import numpy as np

from latency_tui.core.api import ConfigResult, Session
from latency_tui.core.errors import UserError, single_line

from .bins import choose_log, nice_range, target_range
from .format import fmt_count, fmt_ms, fmt_rate

WIDTH, TOP, ROW = 960, 44, 318
#: A panel's size, and its plot area inside it (x from LEFT to PANEL_W - RIGHT).
PANEL_W, PANEL_H, LEFT, RIGHT = 466, 280, 60, 12
PLOT_TOP, PLOT_BOTTOM = 30, 212
BINS = 40
STYLE = """
text { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; font-size: 11px; fill: #222; }
.title { font-size: 15px; font-weight: bold; }
.config-title { font-size: 13px; font-weight: bold; }
.panel-title { font-size: 12px; }
.note, .message { fill: #555; }
.frame { fill: none; stroke: #ccc; }
.axis { stroke: #333; stroke-width: 1; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
.bar { fill: #4a7fb5; }
.p50 { stroke: #1a7f37; fill: none; stroke-width: 1.5; stroke-dasharray: 5 3; }
.p99 { stroke: #c0392b; fill: none; stroke-width: 1.5; }
.rate { stroke: #333; fill: none; stroke-width: 1.5; }
.p50-label { fill: #1a7f37; }
.p99-label { fill: #c0392b; }
"""
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


class Histogram(NamedTuple):
    edges: np.ndarray  # ms, ascending
    counts: np.ndarray
    log: bool  # log-spaced bins
    below: int  # samples under the first edge, not drawn
    above: int  # samples past the last edge, not drawn
    max_ms: float


def histogram(stored: Any, bins: int = BINS) -> Histogram:
    """Bin stored samples (``samplestore.StoredSamples``) on the TUI's axis rules."""
    values, counts = stored.buckets()
    values = np.asarray(values, dtype=np.float64) / 1e6
    counts = np.asarray(counts, dtype=np.int64)
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])

    def at(q: float) -> float:
        rank = int(round(q * (total - 1)))
        return float(values[min(int(np.searchsorted(cumulative, rank, side="right")),
                                values.size - 1)])

    low, p50, p99, p999 = (at(q) for q in (0.001, 0.5, 0.99, 0.999))
    log = choose_log(p50, p99, low)
    first, last = nice_range(*target_range(low, p99, p999), log)
    edges = np.geomspace(first, last, bins + 1) if log else np.linspace(first, last, bins + 1)
    binned, _ = np.histogram(values, edges, weights=counts)
    return Histogram(edges, np.rint(binned).astype(np.int64), log,
                     int(counts[values < edges[0]].sum()), int(counts[values > edges[-1]].sum()),
                     float(values[-1]))


# -- drawing ------------------------------------------------------------------------------
def clean(value: object, limit: int = 200) -> str:
    """Text from the session as XML character data: one printable line, escaped."""
    return escape(_NOT_XML.sub("\ufffd", single_line(value, limit)), {'"': "&quot;"})


def text(x: float, y: float, content: object, cls: str = "", anchor: str = "start") -> str:
    klass = f' class="{cls}"' if cls else ""
    where = f' text-anchor="{anchor}"' if anchor != "start" else ""
    return f'<text x="{x:.1f}" y="{y:.1f}"{klass}{where}>{clean(content)}</text>'


def line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}"/>'


def short(value: float) -> str:
    """A tick label: three significant digits (the tables have the precise figures)."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def compact(value: float) -> str:
    """A count or rate on an axis, short enough to sit beside it: 950, 12k, 1.5M."""
    for above, size, unit in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= above:
            return f"{value / size:.3g}{unit}"
    return short(value)


def ms(value: Optional[float]) -> str:
    """A latency as the tables write it, or to three significant digits below 1 ms, where
    the tables' three decimals would leave a microsecond-scale figure one digit."""
    return fmt_ms(value) if value is None or not 0 < value < 1 else f"{value:.3g}"


def ticks(low: float, high: float, count: int = 5) -> List[float]:
    """Round values (1-2-2.5-5 steps) from ``low`` to ``high``, about ``count`` of them."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(low / step - 1e-9)
    return [i * step for i in range(first, int(math.floor(high / step + 1e-9)) + 1)]


def log_ticks(low: float, high: float) -> List[float]:
    """Round values on a log axis: 1, 2 and 5 of each decade, or only the 1s on a wide range
    (log-spaced values where fewer than three round ones fall in it)."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for steps in ((1, 2, 5), (1, 3), (1,)):
        values = [m * 10.0 ** e for e in decades for m in steps
                  if low * 0.999 <= m * 10.0 ** e <= high * 1.001]
        if len(values) <= 7:
            break
    return values if len(values) >= 3 else np.geomspace(low, high, 5).tolist()


class Scale(NamedTuple):
    """Data to panel coordinates along one axis (log10 of the data when ``log``)."""

    low: float
    high: float
    start: float  # panel coordinate of ``low``
    end: float  # and of ``high``
    log: bool = False

    def __call__(self, value: float) -> float:
        f = math.log10 if self.log else float
        span = (f(self.high) - f(self.low)) or 1.0
        return self.start + (f(value) - f(self.low)) / span * (self.end - self.start)


def y_axis(out: List[str], y: Scale, name: str, labels: List[float]) -> None:
    """The left axis with round ticks, grid lines across the plot, and its name."""
    for value in labels:
        at = y(value)
        out.append(line(LEFT, at, PANEL_W - RIGHT, at, "grid"))
        out.append(text(LEFT - 5, at + 4, short(value) if name == "ms" else compact(value),
                        anchor="end"))
    out.append(line(LEFT, y.start, LEFT, y.end, "axis"))
    out.append(f'<text x="14" y="{(y.start + y.end) / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(y.start + y.end) / 2:.1f})">{clean(name)}</text>')


def x_axis(out: List[str], x: Scale, values: Sequence[float], labels: Sequence[str],
           name: str) -> None:
    out.append(line(x.start, PLOT_BOTTOM, x.end, PLOT_BOTTOM, "axis"))
    for value, label in zip(values, labels):
        at = x(value)
        out.append(line(at, PLOT_BOTTOM, at, PLOT_BOTTOM + 4, "axis"))
        out.append(text(at, PLOT_BOTTOM + 16, label, anchor="middle"))
    out.append(text((x.start + x.end) / 2, PLOT_BOTTOM + 34, name, anchor="middle"))


def panel(kind: str, left: float, top: float, title: str, body: List[str]) -> List[str]:
    return [f'<g class="{kind}" transform="translate({left:.0f},{top:.0f})">',
            f'<rect class="frame" x="0.5" y="0.5" width="{PANEL_W - 1}" height="{PANEL_H - 1}"/>',
            text(8, 17, title, "panel-title"), *body, "</g>"]


def message(words: str) -> List[str]:
    return [text(PANEL_W / 2, PANEL_H / 2, words, "message", "middle")]


def bar(x0: float, x1: float, y: Scale, count: float, low: float, high: float,
        tip: str) -> str:
    top = y(count)
    return (f'<rect class="bar" x="{x0:.2f}" y="{top:.2f}" width="{max(x1 - x0, 0.5):.2f}" '
            f'height="{max(y.start - top, 0):.2f}" data-count="{count:g}" '
            f'data-low-ms="{low:.6g}" data-high-ms="{high:.6g}"><title>{clean(tip)}</title></rect>')


def histogram_body(result: ConfigResult) -> List[str]:
    """The histogram of the stored samples, p50 and p99 marked."""
    h = histogram(result.latency_samples)
    x = Scale(float(h.edges[0]), float(h.edges[-1]), LEFT, PANEL_W - RIGHT, h.log)
    top = float(h.counts.max()) or 1.0
    labels = ticks(0, top * 1.1, 4)
    y = Scale(0, max(top * 1.1, labels[-1]), PLOT_BOTTOM, PLOT_TOP)
    out: List[str] = []
    y_axis(out, y, "samples", labels)
    for low, high, count in zip(h.edges[:-1], h.edges[1:], h.counts):
        if count:
            x0, x1 = x(low), x(high)
            out.append(bar(x0 + 0.5, x1 - 0.5, y, int(count), low, high,
                           f"{short(low)} to {short(high)} ms: {fmt_count(int(count))} samples"))
    positions = log_ticks(x.low, x.high) if h.log else ticks(x.low, x.high, 6)
    x_axis(out, x, positions, [short(v) for v in positions], "latency (ms)")
    percentiles = result.latency.percentiles if result.latency else {}
    for name, height in (("p50", 12), ("p99", 26)):
        value = percentiles.get(name)
        if value is None or not x.low <= value <= x.high:
            continue
        at = x(value)
        out.append(line(at, PLOT_TOP, at, PLOT_BOTTOM, name))
        left = at > LEFT + 70 if name == "p50" else at > PANEL_W - RIGHT - 70
        out.append(text(at - 4 if left else at + 4, PLOT_TOP + height, f"{name} {ms(value)}",
                        f"{name}-label", "end" if left else "start"))
    notes = []
    if h.log:
        notes.append("log scale")
    if h.below:
        notes.append(f"◀ {fmt_count(h.below)} < {short(x.low)} ms")
    notes.append(f"▶ {fmt_count(h.above)} > {short(x.high)} ms not drawn" if h.above
                 else "every sample drawn")
    notes.append(f"max {ms(h.max_ms)} ms")
    out.append(text(PANEL_W - RIGHT, PANEL_H - 8, " · ".join(notes), "note", "end"))
    return out


def percentile_body(result: ConfigResult) -> List[str]:
    """A session without stored samples: its percentiles as bars, value above each."""
    points = [(k, v) for k, v in result.latency.percentiles.items() if v is not None]
    if not points:
        return message("no latency figures")
    top = max(v for _, v in points) or 1.0
    labels = ticks(0, top * 1.15, 4)
    y = Scale(0, max(top * 1.15, labels[-1]), PLOT_BOTTOM, PLOT_TOP)
    x = Scale(0, len(points), LEFT, PANEL_W - RIGHT)
    out: List[str] = []
    y_axis(out, y, "ms", labels)
    for i, (name, value) in enumerate(points):
        x0, x1 = x(i + 0.2), x(i + 0.8)
        out.append(bar(x0, x1, y, value, value, value, f"{name}: {ms(value)} ms"))
        out.append(text((x0 + x1) / 2, y(value) - 4, ms(value), anchor="middle"))
    x_axis(out, x, [i + 0.5 for i in range(len(points))], [n for n, _ in points],
           "percentile (ms)")
    return out


def timeline_body(result: ConfigResult) -> List[str]:
    """p50 and p99 per second over the samples per second of the same seconds."""
    timeline = result.timeline
    n, bucket = len(timeline), timeline.bucket_s
    times = [(i + 0.5) * bucket for i in range(n)]
    rates = [count * result.config.batch_size / bucket for count in timeline.inferences]
    x = Scale(0.0, n * bucket, LEFT, PANEL_W - RIGHT)
    highest = max([v for v in timeline.p99_ms + timeline.p50_ms if v is not None] or [1.0])
    latency_labels = ticks(0, highest * 1.1, 3)
    latency = Scale(0, max(highest * 1.1, latency_labels[-1]), 120, PLOT_TOP)
    rate_labels = ticks(0, (max(rates) or 1.0) * 1.1, 2)
    rate = Scale(0, max((max(rates) or 1.0) * 1.1, rate_labels[-1]), PLOT_BOTTOM, 146)
    out: List[str] = []
    y_axis(out, latency, "ms", latency_labels)
    y_axis(out, rate, "samples/s", rate_labels)
    for name, values in (("p50", timeline.p50_ms), ("p99", timeline.p99_ms)):
        out.extend(polylines(name, x, latency, times, values))
    out.extend(polylines("rate", x, rate, times, rates))
    x_axis(out, x, ticks(0, n * bucket, 6), [short(v) for v in ticks(0, n * bucket, 6)],
           "time (s)")
    p99 = [v for v in timeline.p99_ms if v is not None]
    if p99:
        out.append(text(PANEL_W - RIGHT, 17, f"max p99 {ms(max(p99))} ms",
                        "note", "end"))
    out.append(text(PANEL_W - RIGHT, PANEL_H - 8,
                     f"samples/s: mean {fmt_rate(sum(rates) / n)}, max {fmt_rate(max(rates))}",
                     "note", "end"))
    return out


def polylines(cls: str, x: Scale, y: Scale, times: Sequence[float],
              values: Sequence[Optional[float]]) -> List[str]:
    """One polyline per run of seconds with a value (a second without one is a gap); a run of
    one second is a dot."""
    out, run = [], []
    for t, v in [*zip(times, values), (None, None)]:
        if v is not None:
            run.append(f"{x(t):.1f},{y(v):.1f}")
            continue
        if len(run) == 1:
            cx, cy = run[0].split(",")
            out.append(f'<circle class="{cls}" cx="{cx}" cy="{cy}" r="2"/>')
        elif run:
            out.append(f'<polyline class="{cls}" points="{" ".join(run)}"/>')
        run = []
    return out


# -- the picture ----------------------------------------------------------------------------
def config_title(number: int, result: ConfigResult) -> str:
    config, latency = result.config, result.latency
    words = [f"#{number}", config.label, config.device, result.status
             + (f" ({result.error_kind})" if result.error_kind else "")]
    if result.samples:
        words.append(f"{fmt_count(result.samples)} samples")
    if latency is not None:
        words.append(f"p50 {ms(latency.percentiles.get('p50'))} ms, "
                     f"p99 {ms(latency.percentiles.get('p99'))} ms")
    if result.throughput is not None:
        words.append(f"{fmt_rate(result.throughput.samples_per_s)} samples/s")
    return " · ".join(words)


def histogram_panel(result: ConfigResult) -> List[str]:
    if result.latency_samples is not None:
        title, body = "latency histogram (ms)", histogram_body(result)
        if not result.latency_samples.exact:
            title += ", from the stored log histogram"
    elif result.latency is not None:
        title, body = ("latency percentiles (ms): this session stores no samples",
                       percentile_body(result))
    else:
        title, body = "latency histogram (ms)", message(failure(result))
    return panel("histogram", 12, 24, title, body)


def timeline_panel(result: ConfigResult) -> List[str]:
    title = "p50 (dashed), p99 (solid) per second; samples/s"
    if result.timeline is not None and len(result.timeline):
        body = timeline_body(result)
    else:
        body = message(failure(result) if result.latency is None
                       else "no per-second timeline in this session")
    return panel("timeline", 12 + PANEL_W + 16, 24, title, body)


def failure(result: ConfigResult) -> str:
    if result.status == "finished":
        return "no latency figures"
    return single_line(f"{result.status}: {result.error or result.error_kind or 'no figures'}", 70)


def picked(session: Session, configs: Optional[Sequence[int]]) -> List[int]:
    """The 1-based numbers of the configurations to draw (all of them when None)."""
    count = len(session.results)
    if configs is None:
        return list(range(1, count + 1))
    for number in configs:
        if not 1 <= number <= count:
            raise UserError(f"--config {number}: the session has {count} configuration"
                            f"{'s' if count != 1 else ''}" + (f" (1 to {count})" if count else ""))
    return list(dict.fromkeys(configs))


def to_svg(session: Session, configs: Optional[Sequence[int]] = None) -> str:
    """The SVG: per configuration (or those numbered in ``configs``, 1-based), its histogram
    and its timeline side by side."""
    numbers = picked(session, configs)
    height = TOP + ROW * max(len(numbers), 1) + 8
    title = f"{session.preset.get('name', '?')}: " \
            f"{session.model.get('name') or session.model.get('source', '?')}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}">',
           f"<title>latency-tui: {clean(title)}</title>", f"<style>{STYLE}</style>",
           '<rect width="100%" height="100%" fill="#fff"/>',
           text(12, 26, f"{title} ({session.created})" if session.created else title, "title")]
    if not numbers:
        out.append(text(12, TOP + 24, "this session has no configurations", "message"))
    for row, number in enumerate(numbers):
        result = session.results[number - 1]
        out += [f'<g class="config" id="config-{number}" data-config="{number}" '
                f'transform="translate(0,{TOP + row * ROW})">',
                text(12, 14, config_title(number, result), "config-title"),
                *histogram_panel(result), *timeline_panel(result), "</g>"]
    out.append("</svg>")
    return "\n".join(out) + "\n"
