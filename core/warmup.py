"""When warm-up ends: two consecutive windows of latencies agree, within the policy's bounds.

The first inferences of a model are slow (lazy initialisation, JIT and autotuning, cold caches,
clocks ramping up), and measuring them would skew every statistic. Warm-up runs until the
latency stops changing: the last ``window`` samples look like the ``window`` before them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .specs import WarmupPolicy
from .stats import percentile


def windows_agree(previous: np.ndarray, current: np.ndarray, tolerance: float) -> bool:
    """Whether two windows of latencies look alike: same level and same spread.

    Level is the median, and the medians must lie within ``tolerance`` of the previous one.
    Spread is the interquartile range relative to the median, and the two must differ by at
    most ``tolerance`` (an absolute difference of two ratios). Both statistics ignore up to a
    quarter of a window in outliers, so a stray slow inference (a page fault, a GC pause)
    neither holds warm-up back nor ends it; mean and standard deviation would be dragged by a
    single one. Comparing the spread as well as the level catches a stream whose median has
    settled while its scatter is still shrinking or growing.
    """
    prev_q1, prev_median, prev_q3 = _quartiles(previous)
    cur_q1, cur_median, cur_q3 = _quartiles(current)
    if abs(cur_median - prev_median) > tolerance * abs(prev_median):
        return False
    return abs(_spread(cur_q1, cur_median, cur_q3)
               - _spread(prev_q1, prev_median, prev_q3)) <= tolerance


def _quartiles(window: np.ndarray) -> tuple[float, float, float]:
    # One sort and three lookups: several times cheaper than np.percentile on 20 values.
    ordered = np.sort(window)
    return percentile(ordered, 0.25), percentile(ordered, 0.5), percentile(ordered, 0.75)


def _spread(q1: float, median: float, q3: float) -> float:
    if median > 0:
        return (q3 - q1) / median
    return 0.0 if q3 == q1 else float("inf")


class WarmupTracker:
    """Decides, one warm-up inference at a time, when warm-up ends.

    Call ``record`` after each warm-up inference; it returns True once warm-up should end:
    when at least ``min_iterations`` inferences and ``min_s`` seconds have passed and the last
    two windows agree (``stable``), or at ``max_iterations`` inferences or ``max_s`` seconds,
    whichever comes first (not stable). The first inference is the cold one: it is kept as
    ``first_ns`` and counts as an iteration but stays out of the windows.

    Time runs from ``start_ns`` when given (the engine's clock when warm-up began), otherwise
    from the start of the first inference, ``now_ns - latency_ns`` at the first ``record``.
    The last ``2 * window`` latencies live in a fixed ring buffer: memory does not grow.

    Only neighbouring windows are compared, so a drift slower than ``tolerance`` per window
    (a latency still falling 4 % every 20 inferences) passes for stable; a larger ``window``
    or a smaller ``tolerance`` catches it.
    """

    def __init__(self, policy: WarmupPolicy, start_ns: int | None = None) -> None:
        if policy.window < 1:
            raise ValueError(f"warm-up window must be at least 1, not {policy.window!r}")
        self._policy = policy
        self._start_ns = start_ns
        self._ring = np.zeros(2 * policy.window, dtype=np.float64)
        self._windowed = 0
        self._iterations = 0
        self._first_ns: int | None = None
        self._elapsed_ns = 0
        self._done = False
        self._stable = False

    @property
    def iterations(self) -> int:
        """Inferences recorded, the cold first one included."""
        return self._iterations

    @property
    def first_ns(self) -> int | None:
        """Latency of the first (cold) inference; None before any."""
        return self._first_ns

    @property
    def stable(self) -> bool:
        """Whether warm-up ended because two windows agreed (False while running)."""
        return self._stable

    @property
    def done(self) -> bool:
        return self._done

    def median_ns(self) -> Optional[float]:
        """Median of the warm latencies kept so far (the cold first one left out); None before
        the second inference. Read from other threads (a watchdog): a snapshot is enough."""
        kept = min(self._windowed, self._ring.size)
        if kept == 0:
            return None
        return float(np.median(self._ring[:kept]))

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_ns / 1e9

    def record(self, latency_ns: int, now_ns: int) -> bool:
        """Count one warm-up inference; True when warm-up should end (and on every later call)."""
        if self._done:
            return True
        policy = self._policy
        self._iterations += 1
        if self._first_ns is None:
            self._first_ns = int(latency_ns)
            if self._start_ns is None:
                self._start_ns = int(now_ns) - int(latency_ns)
        else:
            self._ring[self._windowed % self._ring.size] = latency_ns
            self._windowed += 1
        self._elapsed_ns = int(now_ns) - int(self._start_ns)
        elapsed_s = self.elapsed_s

        if (self._iterations >= policy.min_iterations and elapsed_s >= policy.min_s
                and self._windowed >= self._ring.size and self._last_windows_agree()):
            self._done = self._stable = True
        elif self._iterations >= policy.max_iterations or elapsed_s >= policy.max_s:
            self._done = True
        return self._done

    def _last_windows_agree(self) -> bool:
        oldest = self._windowed % self._ring.size
        ordered = np.concatenate((self._ring[oldest:], self._ring[:oldest]))
        window = self._policy.window
        return windows_agree(ordered[:window], ordered[window:], self._policy.tolerance)
