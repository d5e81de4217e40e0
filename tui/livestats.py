"""Statistics for the live display: the engine's summary of the samples so far, and
histogram bins.

The figures a run finally reports come from the engine (``ConfigFinished.result``). While a
configuration runs, the app summarises the samples it has so far with the engine's own
``core.stats.summarize``, so that a live p99 and its interval mean what the final ones mean.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import numpy as np

from latency_tui.core.histogram import LogHistogram
from latency_tui.core.measurement import LatencySummary
from latency_tui.core.stats import summarize


def summarize_ns(latencies_ns: np.ndarray) -> Optional[LatencySummary]:
    """Summarise nanosecond latencies, or None when there are none yet."""
    if latencies_ns is None or len(latencies_ns) == 0:
        return None
    return summarize(np.asarray(latencies_ns))


class Distribution(NamedTuple):
    """Latencies to draw (ms), each counted ``weights`` times (None: once), and their
    0.1th, 50th, 99th and 99.9th percentiles when already known."""

    values_ms: np.ndarray
    weights: Optional[np.ndarray] = None
    quantiles: Optional[Tuple[float, float, float, float]] = None

    @property
    def size(self) -> int:
        return int(self.values_ms.size if self.weights is None else self.weights.sum())


def distribution_of(histogram: LogHistogram) -> Distribution:
    """A log-bucketed histogram as bucket midpoints (ms) and counts, for re-binning."""
    counts = np.asarray(histogram.counts)
    nonzero = np.flatnonzero(counts)
    log_gamma = 2.0 * np.log1p(histogram.relative_error)
    midpoints = np.exp((nonzero + 0.5) * log_gamma) / 1e6
    midpoints = np.clip(midpoints, histogram.min / 1e6, histogram.max / 1e6)
    quantiles = tuple(histogram.percentile(q) / 1e6 for q in (0.001, 0.5, 0.99, 0.999))
    return Distribution(midpoints, counts[nonzero], quantiles)  # type: ignore[arg-type]


#: p99 beyond this multiple of p50 is a long tail: the bins become log-spaced so that the
#: body of the distribution keeps some width on screen.
LOG_BINS_RATIO = 3.0


class Bins(NamedTuple):
    edges: np.ndarray
    centres: np.ndarray
    counts: np.ndarray
    low: float
    high: float
    above: int  # samples beyond ``high``, not drawn
    log: bool  # log-spaced bins (draw against log10 of the centres)


def nice_range(low: float, high: float, log: bool) -> Tuple[float, float]:
    """Widen [low, high] to round numbers (a 1-2-2.5-5 step, or a tenth of a decade on log
    bins) so that the axis holds still while samples arrive, instead of its labels shifting
    in the last digit at every redraw."""
    if log:
        return 10 ** (np.floor(np.log10(low) * 10) / 10), 10 ** (np.ceil(np.log10(high) * 10) / 10)
    raw = (high - low) / 4
    magnitude = 10 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return max(0.0, float(np.floor(low / step) * step)), float(np.ceil(high / step) * step)


def histogram_ms(data: Union[np.ndarray, Distribution], bins: int) -> Bins:
    """Bin latencies from the 0.1th percentile to a quarter of the range past p99 (at most
    p99.9), widened to round numbers, so that a few far slower samples do not squash the
    body and p99 stays in view.
    """
    if not isinstance(data, Distribution):
        data = Distribution(np.asarray(data, dtype=np.float64))
    ms, weights = data.values_ms, data.weights
    if data.quantiles is not None:
        low, p50, p99, p999 = data.quantiles
    else:
        low, p50, p99, p999 = (float(v) for v in np.percentile(ms, [0.1, 50, 99, 99.9]))
    high = max(min(p999, p99 + 0.25 * (p99 - low)), p99)
    if not high > low:  # every sample equal (or nearly): one visible bar
        low, high = low * 0.99 - 1e-6, high * 1.01 + 1e-6
    log = low > 0 and p50 > 0 and p99 > LOG_BINS_RATIO * p50
    low, high = nice_range(low, high, log)
    edges = np.geomspace(low, high, bins + 1) if log else np.linspace(low, high, bins + 1)
    counts, edges = np.histogram(ms, bins=edges, weights=weights)
    counts = counts.astype(np.int64)
    beyond = ms > high
    above = int(np.count_nonzero(beyond) if weights is None else weights[beyond].sum())
    centres = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    return Bins(edges, centres, counts, low, high, above, log)
