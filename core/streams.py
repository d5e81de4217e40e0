"""The one sample store: what the engine keeps of a configuration, and what the TUI keeps of it
live, with the same cap and the same statistics.

A ``Block`` is a batch of samples as the timing loops recorded them, in clock readings relative
to the instant measuring began. A ``SampleStream`` keeps the latencies of one stream (the
inference, a pipeline step, the device's own time) exactly up to ``cap`` samples and, past it,
in a log-bucketed histogram of bounded relative error, so that memory stays bounded on runs of
any length. Beside it a ``TimelineBuilder`` counts completions per second (exactly) with each
second's percentiles (from log buckets), whatever the order in which copies deliver samples.

Exact samples are kept sorted lazily: new blocks wait in a list and are merged into the sorted
array only when someone reads (a summary, a histogram's bins), which costs one O(n) merge, so a
live display can ask twice a second without sorting millions of samples each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .histogram import LogHistogram
from .measurement import LatencySummary, Timeline
from .stats import summarize, summarize_histogram

DEFAULT_CAP = 2_000_000
#: Relative error of the timeline's per-second percentiles.
TIMELINE_RELATIVE_ERROR = 0.005
_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Block:
    """Samples of one configuration, in ns since measuring began: each inference's start and end,
    the device's own time of it (when the backend times the device), and around it the start of
    its preprocess and the end of its postprocess (when the model has those steps).

    In open loop each sample also has the time its request was scheduled (``scheduled_ns``):
    its latency is then counted from that instant (queueing included, no coordinated omission),
    and the service time (end - start) and the time queued (start - scheduled) are stages.
    """

    start_ns: np.ndarray
    end_ns: np.ndarray
    device_ns: Optional[np.ndarray] = None
    pre_start_ns: Optional[np.ndarray] = None
    post_end_ns: Optional[np.ndarray] = None
    scheduled_ns: Optional[np.ndarray] = None

    @property
    def size(self) -> int:
        return int(self.end_ns.size)

    @property
    def latency_ns(self) -> np.ndarray:
        """Each sample's latency: from its start, or from its scheduled time in open loop."""
        return self.end_ns - (self.start_ns if self.scheduled_ns is None else self.scheduled_ns)

    def stages(self) -> Dict[str, np.ndarray]:
        """The pipeline's step durations, and the open loop's service and queueing times
        (empty for a plain closed-loop record)."""
        out: Dict[str, np.ndarray] = {}
        if self.scheduled_ns is not None:
            out["service"] = self.end_ns - self.start_ns
            out["queue"] = self.start_ns - self.scheduled_ns
        if self.pre_start_ns is not None and self.post_end_ns is not None:
            out.update({
                "end_to_end": self.post_end_ns - self.pre_start_ns,
                "preprocess": self.start_ns - self.pre_start_ns,
                "postprocess": self.post_end_ns - self.end_ns,
            })
        return out

    @classmethod
    def empty(cls) -> "Block":
        return cls(_EMPTY, _EMPTY)

    @classmethod
    def concat(cls, blocks: Sequence["Block"]) -> "Block":
        blocks = [b for b in blocks if b.size]
        if not blocks:
            return cls.empty()
        if len(blocks) == 1:
            return blocks[0]

        def join(name: str) -> Optional[np.ndarray]:
            parts = [getattr(b, name) for b in blocks]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        return cls(join("start_ns"), join("end_ns"), join("device_ns"), join("pre_start_ns"),
                   join("post_end_ns"), join("scheduled_ns"))

    def shifted(self, origin_ns: int) -> "Block":
        """The same samples with ``origin_ns`` subtracted from every clock reading."""
        def shift(values: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if values is None else values - origin_ns

        return Block(self.start_ns - origin_ns, self.end_ns - origin_ns, self.device_ns,
                     shift(self.pre_start_ns), shift(self.post_end_ns), shift(self.scheduled_ns))


class SampleStream:
    """One stream of latencies (ns): exact to ``cap``, then a log-bucketed histogram."""

    def __init__(self, cap: int = DEFAULT_CAP, relative_error: float = 0.005) -> None:
        if cap < 0:
            raise ValueError(f"cap must not be negative, not {cap!r}")
        self.cap = cap
        self.count = 0
        self._relative_error = relative_error
        self._sorted = _EMPTY
        self._pending: List[np.ndarray] = []
        #: Built only once the cap is crossed: below it the exact samples say everything.
        self._histogram: Optional[LogHistogram] = None
        self._summary: Optional[LatencySummary] = None
        self._summary_at = -1

    def add(self, latency_ns: np.ndarray) -> None:
        values = np.asarray(latency_ns, dtype=np.int64)
        if not values.size:
            return
        self.count += int(values.size)
        if self._histogram is None and self.count <= self.cap:
            self._pending.append(values)
            return
        if self._histogram is None:
            self._histogram = LogHistogram(self._relative_error)
            self._histogram.add(self._sorted)
            for part in self._pending:
                self._histogram.add(part)
            self._sorted, self._pending = _EMPTY, []
        self._histogram.add(values)

    @property
    def exact(self) -> bool:
        return self._histogram is None

    @property
    def histogram(self) -> Optional[LogHistogram]:
        """The log-bucketed histogram, once past the cap (None below it)."""
        return self._histogram

    def sorted_ns(self) -> np.ndarray:
        """Every sample, ascending (only while exact; empty past the cap)."""
        if self._pending:
            merged = np.concatenate([self._sorted, *self._pending])
            # Timsort finds the sorted run already there: merging costs O(n), not O(n log n).
            self._sorted = np.sort(merged, kind="stable")
            self._pending = []
        return self._sorted

    def summary(self, confidence: float = 0.95) -> Optional[LatencySummary]:
        """Every statistic of the samples so far (None before the first); recomputed only when
        samples were added since the last call."""
        if self.count == 0:
            return None
        if self._summary_at != self.count:
            if self._histogram is None:
                self._summary = summarize(self.sorted_ns(), confidence=confidence, presorted=True)
            else:
                self._summary = summarize_histogram(self._histogram, confidence=confidence)
            self._summary_at = self.count
        return self._summary

    def quantiles(self, qs: Sequence[float]) -> List[float]:
        """Quantiles (ns) of the samples so far, exact while exact."""
        if self.count == 0:
            raise ValueError("no samples yet")
        if self._histogram is not None:
            return [self._histogram.percentile(q) for q in qs]
        from .stats import percentile

        ordered = self.sorted_ns()
        return [percentile(ordered, q) for q in qs]

    def quantile_interval(self, q: float, confidence: float = 0.95
                          ) -> Optional[Tuple[float, float, float]]:
        """``(value, low, high)`` in ns: the ``q``-quantile and its distribution-free confidence
        interval, without the rest of a summary (cheap enough for an early-stop check every
        half second over millions of samples); None while too few samples bound it."""
        from .stats import order_statistic_interval, percentile

        ranks = order_statistic_interval(self.count, q, confidence) if self.count else None
        if ranks is None:
            return None
        if self._histogram is not None:
            hist = self._histogram
            return (hist.percentile(q), hist.value_at_rank(ranks[0]),
                    hist.value_at_rank(ranks[1]))
        ordered = self.sorted_ns()
        return percentile(ordered, q), float(ordered[ranks[0]]), float(ordered[ranks[1]])

    def quantile_lower(self, q: float, confidence: float = 0.95) -> Optional[float]:
        """A one-sided lower confidence bound (ns) of the ``q``-quantile: the true quantile lies
        above it with ``confidence``; None while too few samples say anything
        (``stats.quantile_lower_rank``)."""
        from .stats import quantile_lower_rank

        rank = quantile_lower_rank(self.count, q, confidence)
        if rank is None:
            return None
        if self._histogram is not None:
            return float(self._histogram.value_at_rank(rank))
        return float(self.sorted_ns()[rank])

    def bin_counts(self, edges_ns: np.ndarray) -> np.ndarray:
        """How many samples fall in each ``[edges[i], edges[i + 1])`` (the last bin closed):
        exact while exact; past the cap, from the histogram's bucket midpoints."""
        edges = np.asarray(edges_ns)
        if self._histogram is None:
            ordered = self.sorted_ns()
            positions = np.searchsorted(ordered, edges.astype(np.int64), side="left")
            positions[-1] = np.searchsorted(ordered, int(edges[-1]), side="right")
            return np.diff(positions)
        counts = np.asarray(self._histogram.counts)
        nonzero = np.flatnonzero(counts)
        midpoints = self._histogram.midpoint(nonzero)
        binned, _ = np.histogram(midpoints, bins=edges.astype(np.float64), weights=counts[nonzero])
        return binned.astype(np.int64)

    def above(self, value_ns: float) -> int:
        """Samples strictly above ``value_ns`` (a histogram's clipped tail)."""
        if self._histogram is None:
            ordered = self.sorted_ns()
            return int(ordered.size - np.searchsorted(ordered, value_ns, side="right"))
        counts = np.asarray(self._histogram.counts)
        nonzero = np.flatnonzero(counts)
        return int(counts[nonzero][self._histogram.midpoint(nonzero) > value_ns].sum())


class TimelineBuilder:
    """Completions per time bucket with each bucket's latency percentiles, built incrementally.

    Each bucket keeps a sparse log-bucketed histogram (sorted bucket indices and counts) plus its
    exact count, minimum and maximum, so samples may arrive in any order (copies deliver theirs
    late and interleaved) and memory grows with the number of distinct latency buckets a second
    sees (about 2 kB per second of a typical run), not with the number of samples.
    """

    def __init__(self, bucket_s: float = 1.0,
                 relative_error: float = TIMELINE_RELATIVE_ERROR) -> None:
        if bucket_s <= 0:
            raise ValueError(f"bucket_s must be positive, not {bucket_s!r}")
        self.bucket_s = bucket_s
        self.relative_error = relative_error
        self._bucket_ns = int(round(bucket_s * 1e9))
        self._layout = LogHistogram(relative_error)
        self._bins: List[np.ndarray] = []
        self._counts: List[np.ndarray] = []
        self._min: List[int] = []
        self._max: List[int] = []
        #: Each bucket's (count, p50, p99, max), recomputed only for buckets that changed, so
        #: that a live view of an hour-long run does not redo 3,600 seconds at every redraw.
        self._figures: List[Tuple[int, Optional[float], Optional[float], Optional[float]]] = []
        self._dirty: set = set()

    def add(self, end_ns: np.ndarray, latency_ns: np.ndarray) -> None:
        """Count samples that ended at ``end_ns`` (since measuring began) with ``latency_ns``."""
        end = np.asarray(end_ns, dtype=np.int64)
        if not end.size:
            return
        latency = np.asarray(latency_ns, dtype=np.int64)
        buckets = np.maximum(end, 0) // self._bucket_ns
        order = np.argsort(buckets, kind="stable")
        buckets, latency = buckets[order], latency[order]
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        lows = np.minimum.reduceat(latency, starts)
        highs = np.maximum.reduceat(latency, starts)
        bounds = np.r_[starts, buckets.size]
        self._grow(int(buckets[-1]) + 1)
        for i, start in enumerate(starts):
            bucket = int(buckets[start])
            bins, counts = np.unique(self._layout.bucket_of(latency[start:bounds[i + 1]]),
                                     return_counts=True)
            if self._counts[bucket].size:
                bins = np.concatenate([self._bins[bucket], bins])
                counts = np.concatenate([self._counts[bucket], counts])
                bins, inverse = np.unique(bins, return_inverse=True)
                counts = np.bincount(inverse, weights=counts).astype(np.int64)
            self._bins[bucket], self._counts[bucket] = bins, counts
            self._min[bucket] = min(self._min[bucket], int(lows[i]))
            self._max[bucket] = max(self._max[bucket], int(highs[i]))
            self._dirty.add(bucket)

    def _grow(self, size: int) -> None:
        while len(self._bins) < size:
            self._bins.append(_EMPTY)
            self._counts.append(_EMPTY)
            self._min.append(np.iinfo(np.int64).max)
            self._max.append(np.iinfo(np.int64).min)
            self._figures.append((0, None, None, None))

    def build(self, buckets: Optional[int] = None) -> Timeline:
        """The timeline so far, ``buckets`` long when given (trailing seconds with no completion
        count as zero)."""
        size = max(len(self._bins), buckets or 0)
        self._grow(size)
        for bucket in self._dirty:
            n = int(self._counts[bucket].sum())
            self._figures[bucket] = (n, self._percentile(bucket, n, 0.50) / 1e6,
                                     self._percentile(bucket, n, 0.99) / 1e6,
                                     self._max[bucket] / 1e6)
        self._dirty.clear()
        columns = list(zip(*self._figures[:size])) or [(), (), (), ()]
        return Timeline(self.bucket_s, tuple(columns[0]), tuple(columns[1]), tuple(columns[2]),
                        tuple(columns[3]), self.relative_error)

    def _percentile(self, bucket: int, n: int, q: float) -> float:
        cumulative = np.cumsum(self._counts[bucket])
        position = (n - 1) * q
        below = int(position)
        fraction = position - below

        def at(rank: int) -> float:
            index = int(np.searchsorted(cumulative, rank, side="right"))
            value = float(self._layout.midpoint(self._bins[bucket][index]))
            return min(max(value, self._min[bucket]), self._max[bucket])

        low = at(below)
        return low if fraction == 0 else low + (at(min(below + 1, n - 1)) - low) * fraction


class ConfigStreams:
    """Everything kept of one configuration: the inference stream, the device's, each pipeline
    step's and the timeline; fed ``Block`` by ``Block`` by the engine and by the TUI alike."""

    def __init__(self, cap: int = DEFAULT_CAP, bucket_s: float = 1.0) -> None:
        self.cap = cap
        self.latency = SampleStream(cap)
        self.device: Optional[SampleStream] = None
        self.stages: Dict[str, SampleStream] = {}
        self.timeline = TimelineBuilder(bucket_s)

    @property
    def count(self) -> int:
        return self.latency.count

    def add(self, block: Block) -> None:
        if not block.size:
            return
        latency = block.latency_ns
        self.latency.add(latency)
        self.timeline.add(block.end_ns, latency)
        if block.device_ns is not None:
            if self.device is None:
                self.device = SampleStream(self.cap)
            self.device.add(block.device_ns)
        for name, values in block.stages().items():
            stream = self.stages.get(name)
            if stream is None:
                stream = self.stages[name] = SampleStream(self.cap)
            stream.add(values)
