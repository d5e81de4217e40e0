"""The latency histogram's bins, counted from the engine's own sample store: pure functions,
no Textual.

Binning asks the stream for a handful of quantiles and for the count in each bin, which on the
sorted exact samples is a binary search per edge: a redraw costs the same for a thousand
samples as for two million.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from latency_tui.core.api import SampleStream

#: p99 beyond this multiple of p50 is a long tail: the bins become log-spaced so that the
#: body of the distribution keeps some width on screen.
LOG_BINS_RATIO = 3.0


class Bins(NamedTuple):
    edges: np.ndarray  # ms
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


def histogram_bins(stream: SampleStream, bins: int) -> Bins:
    """Bin a stream's latencies from the 0.1th percentile to a quarter of the range past p99 (at
    most p99.9), widened to round numbers, so that a few far slower samples do not squash the
    body and p99 stays in view."""
    low, p50, p99, p999 = (v / 1e6 for v in stream.quantiles([0.001, 0.5, 0.99, 0.999]))
    high = max(min(p999, p99 + 0.25 * (p99 - low)), p99)
    if not high > low:  # every sample equal (or nearly): one visible bar
        low, high = low * 0.99 - 1e-6, high * 1.01 + 1e-6
    log = low > 0 and p50 > 0 and p99 > LOG_BINS_RATIO * p50
    low, high = nice_range(low, high, log)
    edges = np.geomspace(low, high, bins + 1) if log else np.linspace(low, high, bins + 1)
    counts = stream.bin_counts(np.round(edges * 1e6)).astype(np.int64)
    above = stream.above(high * 1e6)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
    return Bins(edges, centres, counts, low, high, above, log)
