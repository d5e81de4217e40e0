"""The latency histogram's bins, counted from the engine's own sample store, and the decisions
about its axis (scale and range): pure functions, no Textual.

Binning asks the stream for a handful of quantiles and for the count in each bin, which on the
sorted exact samples is a binary search per edge: a redraw costs the same for a thousand
samples as for two million.

The axis holds still while one configuration is measured: the scale changes only when the
tail has clearly grown or shrunk (hysteresis around ``LOG_BINS_RATIO``), and the range only
widens. A redraw passes the previous ``Axis`` back in; a new configuration starts from none.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from latency_tui.core.api import SampleStream

#: p99 beyond this multiple of p50 is a long tail: the bins become log-spaced so that the
#: body of the distribution keeps some width on screen. This decides a configuration's first
#: draw; after that a linear axis turns log only past ``LOG_ON_RATIO`` and a log axis turns
#: linear only below ``LOG_OFF_RATIO``, so that a p99 hovering near 3 x p50 does not flip it.
LOG_BINS_RATIO = 3.0
LOG_ON_RATIO = 3.5
LOG_OFF_RATIO = 2.5
#: A linear range is rounded out to at most this many round steps: a finer step leaves less
#: of the pane's width empty.
NICE_STEPS = 8


class Axis(NamedTuple):
    low: float  # ms
    high: float
    log: bool  # log-spaced bins (draw against log10 of the centres)


class Bins(NamedTuple):
    edges: np.ndarray  # ms
    centres: np.ndarray
    counts: np.ndarray
    low: float
    high: float
    above: int  # samples beyond ``high``, not drawn
    log: bool  # log-spaced bins (draw against log10 of the centres)
    below: int = 0  # samples under ``low``, not drawn
    max: float = 0.0  # the slowest sample, ms

    @property
    def axis(self) -> Axis:
        return Axis(self.low, self.high, self.log)


def choose_log(p50: float, p99: float, low: float, previous: Optional[bool] = None) -> bool:
    """Log-spaced bins for a long tail, with hysteresis: ``previous`` is the scale drawn last
    for this configuration (None on its first draw)."""
    if not (low > 0 and p50 > 0):
        return False
    ratio = p99 / p50
    if previous is None:
        return ratio > LOG_BINS_RATIO
    return ratio > (LOG_OFF_RATIO if previous else LOG_ON_RATIO)


def target_range(low: float, p99: float, p999: float) -> Tuple[float, float]:
    """From the 0.1th percentile to a quarter of the range past p99 (at most p99.9), so that a
    few far slower samples do not squash the body and p99 stays in view."""
    high = max(min(p999, p99 + 0.25 * (p99 - low)), p99)
    if not high > low:  # every sample equal (or nearly): one visible bar
        low, high = low * 0.99 - 1e-6, high * 1.01 + 1e-6
    return low, high


def nice_range(low: float, high: float, log: bool) -> Tuple[float, float]:
    """Widen [low, high] to round numbers (multiples of a 1-2-2.5-5 step, the finest that
    spans it in at most ``NICE_STEPS`` steps, or a tenth of a decade on log bins) so that the
    axis labels do not shift in the last digit at every redraw. A round range is returned as it
    is: no finer step spans a wider range in as few steps."""
    eps = 1e-9  # binary rounding must not push a round bound one step further out
    if log:
        return (10 ** (np.floor(np.log10(low) * 10 + eps) / 10),
                10 ** (np.ceil(np.log10(high) * 10 - eps) / 10))
    magnitude = 10 ** np.floor(np.log10((high - low) / NICE_STEPS))
    for step in (m * magnitude * 10 ** e for e in range(3) for m in (1, 2, 2.5, 5)):
        first, last = np.floor(low / step + eps), np.ceil(high / step - eps)
        if last - first <= NICE_STEPS:
            break
    return max(0.0, float(first * step)), float(last * step)


def next_axis(previous: Optional[Axis], low: float, high: float, log: bool) -> Axis:
    """The axis to draw [low, high] on: the previous one while it still holds the range on the
    same scale, else one widened to hold both (a range only grows within a configuration; a
    change of scale starts afresh)."""
    if previous is not None and previous.log == log:
        if previous.low <= low and high <= previous.high:
            return previous
        low, high = min(low, previous.low), max(high, previous.high)
    nice_low, nice_high = nice_range(low, high, log)
    return Axis(nice_low, nice_high, log)


def histogram_bins(stream: SampleStream, bins: int, previous: Optional[Axis] = None) -> Bins:
    """Bin a stream's latencies on an axis that follows ``previous`` (the axis drawn last for
    the same stream, None for a new one) as described above."""
    qs = stream.quantiles([0.001, 0.5, 0.99, 0.999, 1.0])
    low, p50, p99, p999, top = (v / 1e6 for v in qs)
    if stream.histogram is not None:
        top = stream.histogram.max / 1e6  # exact, where the quantile is within the buckets
    log = choose_log(p50, p99, low, None if previous is None else previous.log)
    axis = next_axis(previous, *target_range(low, p99, p999), log)
    n = bins + 1
    edges = np.geomspace(axis.low, axis.high, n) if log else np.linspace(axis.low, axis.high, n)
    edges_ns = np.round(edges * 1e6)
    counts = stream.bin_counts(edges_ns).astype(np.int64)
    above = stream.above(float(edges_ns[-1]))
    below = max(0, stream.count - int(counts.sum()) - above)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    return Bins(edges, centres, counts, axis.low, axis.high, above, log, below, float(top))
