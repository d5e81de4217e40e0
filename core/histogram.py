"""A bounded-memory latency store for runs longer than the sample cap.

Past ``RunPlan.sample_cap`` the engine stops keeping every latency and counts them instead in
geometric buckets. A bucket ``i`` holds the values in ``[g**i, g**(i + 1))`` nanoseconds and
reports its geometric midpoint ``g**(i + 0.5)``; with ``g = (1 + e)**2`` that midpoint is within
a relative ``e`` of every value in the bucket, so every percentile read from the histogram is
within ``relative_error`` of the exact one. The buckets span 1 ns to ``max_ns`` (1e12 ns, about
17 minutes) whatever is added: about 2,800 int64 counts at the default 0.5 %.

Count, mean, standard deviation, minimum and maximum are not read from the buckets: they are
kept exactly, the mean and spread as a running mean and sum of squared deviations merged batch
by batch (Chan et al.), which stays accurate where a plain sum of squares would cancel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class LogHistogram:
    """Latencies in nanoseconds, counted in log-spaced buckets of bounded relative error."""

    __slots__ = (
        "_count",
        "_counts",
        "_log_gamma",
        "_m2",
        "_max",
        "_max_ns",
        "_mean",
        "_min",
        "_relative_error",
    )

    def __init__(self, relative_error: float = 0.005, max_ns: float = 1e12) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must lie in (0, 1), not {relative_error!r}")
        if max_ns <= 1.0:
            raise ValueError(f"max_ns must exceed 1 ns, not {max_ns!r}")
        self._relative_error = float(relative_error)
        self._max_ns = float(max_ns)
        self._log_gamma = 2.0 * math.log1p(relative_error)
        buckets = math.floor(math.log(max_ns) / self._log_gamma) + 1
        self._counts = np.zeros(buckets, dtype=np.int64)
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- adding -------------------------------------------------------------------------------

    def add(self, values_ns: Any) -> None:
        """Count a batch of latencies (an array, a list or one number) in nanoseconds.

        Values below 1 ns, zero and negative ones included, land in the first bucket and values
        above ``max_ns`` in the last; both still count exactly towards mean, min and max.
        """
        values = np.asarray(values_ns, dtype=np.float64).ravel()
        if values.size == 0:
            return
        self._counts += np.bincount(self.bucket_of(values), minlength=self._counts.size)
        mean = float(values.mean())
        deviations = values - mean
        self._combine(values.size, mean, float(np.dot(deviations, deviations)),
                      float(values.min()), float(values.max()))

    def merge(self, other: LogHistogram) -> None:
        """Add every latency counted in ``other`` (same layout required) to this histogram."""
        if (other._relative_error, other._max_ns) != (self._relative_error, self._max_ns):
            raise ValueError("cannot merge histograms with different relative_error or max_ns")
        if other._count == 0:
            return
        self._counts += other._counts
        self._combine(other._count, other._mean, other._m2, other._min, other._max)

    def _combine(self, count: int, mean: float, m2: float, low: float, high: float) -> None:
        total = self._count + count
        delta = mean - self._mean
        self._mean += delta * count / total
        self._m2 += m2 + delta * delta * self._count * count / total
        self._count = total
        self._min = min(self._min, low)
        self._max = max(self._max, high)

    def bucket_of(self, values_ns: Any) -> np.ndarray:
        """The bucket index of each value: the layout other per-bucket counts share."""
        values = np.asarray(values_ns, dtype=np.float64)
        index = np.floor(np.log(np.maximum(values, 1.0)) / self._log_gamma).astype(np.intp)
        return np.minimum(index, self._counts.size - 1, out=index)

    def midpoint(self, bucket: Any) -> Any:
        """The value (ns) a bucket reports: within ``relative_error`` of all it holds."""
        return np.exp((np.asarray(bucket) + 0.5) * self._log_gamma)

    # -- reading ------------------------------------------------------------------------------

    @property
    def relative_error(self) -> float:
        return self._relative_error

    @property
    def max_ns(self) -> float:
        return self._max_ns

    @property
    def count(self) -> int:
        return self._count

    @property
    def mean(self) -> float:
        """Exact mean in nanoseconds; NaN while empty."""
        return self._mean if self._count else math.nan

    @property
    def std(self) -> float:
        """Exact population standard deviation (ddof=0) in nanoseconds; NaN while empty."""
        return math.sqrt(max(self._m2, 0.0) / self._count) if self._count else math.nan

    @property
    def min(self) -> float:
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        return self._max if self._count else math.nan

    @property
    def counts(self) -> np.ndarray:
        """The bucket counts, read-only."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        """Memory held for the buckets: fixed at construction, whatever is added."""
        return int(self._counts.nbytes)

    def value_at_rank(self, rank: int) -> float:
        """The ``rank``-th smallest latency (0-based), to within ``relative_error``.

        The bucket's midpoint is clamped to the exact min and max: the true value lies in both
        the bucket and ``[min, max]``, so clamping only moves the estimate closer to it.
        """
        if not 0 <= rank < self._count:
            raise ValueError(f"rank {rank} outside 0..{self._count - 1}")
        bucket = int(np.searchsorted(np.cumsum(self._counts), rank, side="right"))
        midpoint = math.exp((bucket + 0.5) * self._log_gamma)
        return min(max(midpoint, self._min), self._max)

    def percentile(self, q: float) -> float:
        """The ``q``-quantile (0 <= q <= 1) in nanoseconds, numpy's "linear" definition.

        Interpolating between two order statistics that are each within ``relative_error``
        keeps the result within ``relative_error`` of the exact interpolation.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must lie in [0, 1], not {q!r}")
        if self._count == 0:
            raise ValueError("percentile of an empty histogram")
        position = (self._count - 1) * q
        below = math.floor(position)
        fraction = position - below
        low = self.value_at_rank(below)
        if fraction == 0.0:
            return low
        return low + (self.value_at_rank(below + 1) - low) * fraction

    # -- session JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; only nonzero buckets are written, as ``[index, count]`` pairs."""
        nonzero = np.flatnonzero(self._counts)
        return {
            "relative_error": self._relative_error,
            "max_ns": self._max_ns,
            "count": self._count,
            "mean": self._mean,
            "m2": self._m2,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
            "buckets": [[int(i), int(self._counts[i])] for i in nonzero],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        hist = cls(relative_error=data["relative_error"], max_ns=data["max_ns"])
        for index, count in data["buckets"]:
            hist._counts[int(index)] = int(count)
        hist._count = int(data["count"])
        if int(hist._counts.sum()) != hist._count:
            raise ValueError("histogram buckets do not add up to its count")
        if hist._count:
            hist._mean = float(data["mean"])
            hist._m2 = float(data["m2"])
            hist._min = float(data["min"])
            hist._max = float(data["max"])
        return hist
