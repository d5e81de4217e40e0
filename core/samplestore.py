"""A configuration's latency samples, stored compactly in the session so that ``compare`` can test
two sessions against each other long after they ran.

Two forms, chosen by the number of samples:

- up to ``STORE_CAP`` (1,000,000) samples, **every sample**, sorted, rounded to a quantum of
  nanoseconds (the largest power of two not above 1/10,000 of the median, at least 1 ns: each
  stored value lies within half a quantum, at most 0.005 % of the median, of the measured one),
  delta-encoded, split into byte planes, compressed with zlib and written as base64. About
  15 to 50 kB per million samples (the README gives the measured figures);
- past it, the **log-bucketed histogram** (``histogram.LogHistogram``, 0.5 % relative error):
  its nonzero buckets, delta-encoded the same way, plus the exact minimum and maximum.

Either way the store answers one question, what the ``rank``-th smallest sample was
(``values_at_ranks``), which is all a percentile, or a bootstrap of one, needs. Loading checks
every field and decodes the data once, so that a damaged file is refused with one line naming
the field, never read as other numbers.
"""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from .errors import UserError
from .fields import Fields
from .histogram import LogHistogram

#: Every sample is stored up to this many; past it, the log histogram.
STORE_CAP = 1_000_000
#: The quantum is the largest power of two (ns) not above the median times this.
QUANTUM_FRACTION = 1e-4
#: The relative error of the histogram form (that of ``streams.SampleStream`` past its cap).
HISTOGRAM_RELATIVE_ERROR = 0.005
EXACT, HISTOGRAM = "sorted-delta-zlib", "log-histogram-zlib"
#: A stored form with more values than this is not one of ours (and would not fit in memory).
MAX_VALUES = 1 << 25
#: Nor one with values past this (about 104 days, where float64 still counts every ns).
MAX_NS = float(1 << 53)
_WIDTHS = (1, 2, 4, 8)


@dataclass(frozen=True)
class StoredSamples:
    """One stream's samples (ns) as the session keeps them; compared by their encoded form."""

    encoding: str
    count: int
    #: ``EXACT``: the quantum (ns) and the first (smallest) value in quanta.
    quantum_ns: int = 1
    first: int = 0
    #: Packed deltas: between sorted values (``EXACT``) or between bucket indices (``HISTOGRAM``).
    deltas: str = ""
    #: ``HISTOGRAM``: its relative error, the packed counts of its nonzero buckets and the exact
    #: extremes (ns), to which bucket midpoints are clamped.
    relative_error: float = 0.0
    counts: str = ""
    min_ns: float = 0.0
    max_ns: float = 0.0

    @property
    def exact(self) -> bool:
        return self.encoding == EXACT

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"encoding": self.encoding, "unit": "ns", "count": self.count}
        if self.exact:
            out.update(quantum_ns=self.quantum_ns, first=self.first, deltas=self.deltas)
        else:
            out.update(relative_error=self.relative_error, min_ns=self.min_ns,
                       max_ns=self.max_ns, first=self.first, deltas=self.deltas,
                       counts=self.counts)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "StoredSamples":
        """Read and check a stored form: every field typed, the data decoded and checked
        against the count (a ``UserError`` naming the field otherwise)."""
        f = Fields(data, where)
        encoding = f.string("encoding")
        if encoding not in (EXACT, HISTOGRAM):
            raise f.fail("encoding", f"must be {EXACT!r} or {HISTOGRAM!r}, not {encoding!r}")
        if f.string("unit", "ns") != "ns":
            raise f.fail("unit", f"must be 'ns', not {f.data['unit']!r}")
        count = f.number("count", integer=True, minimum=1)
        if count > MAX_VALUES:
            raise f.fail("count", f"{count} is more than {MAX_VALUES} stored samples")
        first = f.number("first", integer=True)
        deltas = f.string("deltas")
        if encoding == EXACT:
            quantum = f.number("quantum_ns", integer=True, minimum=1)
            steps = unpack(deltas, f.path("deltas"), size=count - 1)
            top = abs(first) + float(steps.sum(dtype=np.float64))
            if top * quantum > MAX_NS:
                raise f.fail("deltas", f"values reach {top * quantum:.3g} ns, past {MAX_NS:.3g}")
            return cls(encoding, count, quantum_ns=quantum, first=first, deltas=deltas)
        error = float(f.number("relative_error", minimum=1e-4))
        if error >= 0.5:
            raise f.fail("relative_error", f"must be below 0.5, not {error!r}")
        low, high = float(f.number("min_ns")), float(f.number("max_ns"))
        if high < low:
            raise f.fail("max_ns", f"{high!r} is below min_ns {low!r}")
        log_gamma = 2.0 * math.log1p(error)
        most = min(count, int(math.log(MAX_NS) / log_gamma) + 1)
        counts = unpack(f.string("counts"), f.path("counts"), at_most=most)
        if counts.size == 0 or int(counts.sum()) != count or not counts.all():
            raise f.fail("counts", f"must be {count} samples in nonzero buckets")
        steps = unpack(deltas, f.path("deltas"), size=counts.size - 1)
        if first < 0 or not steps.all() or \
                (first + float(steps.sum(dtype=np.float64))) * log_gamma > math.log(MAX_NS):
            raise f.fail("deltas", f"bucket indices must rise from 0 and stay below "
                                   f"{MAX_NS:.3g} ns")
        return cls(encoding, count, first=first, deltas=deltas, relative_error=error,
                   counts=f.data["counts"], min_ns=low, max_ns=high)

    # -- reading ------------------------------------------------------------------------------

    def sorted_ns(self) -> np.ndarray:
        """Every stored sample, ascending, in ns (float64): the exact form's values, or each
        histogram bucket's midpoint repeated by its count."""
        if self.exact:
            steps = unpack(self.deltas, "deltas", size=self.count - 1)
            values = np.empty(self.count, dtype=np.int64)
            values[0] = self.first
            np.cumsum(steps, out=values[1:])
            values[1:] += self.first
            return values.astype(np.float64) * self.quantum_ns
        values, counts = self.buckets()
        return np.repeat(values, counts)

    def buckets(self) -> "tuple[np.ndarray, np.ndarray]":
        """``(values_ns, counts)``: distinct values ascending and how many samples each has."""
        if self.exact:
            values, counts = np.unique(self.sorted_ns(), return_counts=True)
            return values, counts.astype(np.int64)
        counts = unpack(self.counts, "counts")
        index = self.first + np.concatenate(
            [[0], np.cumsum(unpack(self.deltas, "deltas", size=counts.size - 1))])
        log_gamma = 2.0 * math.log1p(self.relative_error)
        values = np.clip(np.exp((index + 0.5) * log_gamma), self.min_ns, self.max_ns)
        return values, counts

    def values_at_ranks(self, ranks: Any) -> np.ndarray:
        """The ``ranks``-th smallest samples (0-based, ns): a view that costs one decode."""
        values, counts = self.buckets()
        positions = np.searchsorted(np.cumsum(counts), np.asarray(ranks), side="right")
        return values[np.minimum(positions, values.size - 1)]


def store_sorted(sorted_ns: np.ndarray) -> Optional[StoredSamples]:
    """The stored form of ascending samples (ns): exact up to ``STORE_CAP``, else a histogram."""
    values = np.asarray(sorted_ns, dtype=np.int64)
    if values.size == 0:
        return None
    if values.size > STORE_CAP:
        histogram = LogHistogram(HISTOGRAM_RELATIVE_ERROR)
        histogram.add(values)
        return store_histogram(histogram)
    median = float(values[values.size // 2])
    quantum = 1 << max(0, int(math.floor(math.log2(max(median * QUANTUM_FRACTION, 1.0)))))
    quanta = (values + quantum // 2) // quantum
    return StoredSamples(EXACT, int(values.size), quantum_ns=quantum, first=int(quanta[0]),
                         deltas=pack(np.diff(quanta)))


def store_histogram(histogram: LogHistogram) -> Optional[StoredSamples]:
    """The stored form of a log histogram: its nonzero buckets and exact extremes."""
    if histogram.count == 0:
        return None
    counts = np.asarray(histogram.counts)
    nonzero = np.flatnonzero(counts)
    return StoredSamples(HISTOGRAM, int(histogram.count), first=int(nonzero[0]),
                         deltas=pack(np.diff(nonzero)), relative_error=histogram.relative_error,
                         counts=pack(counts[nonzero]), min_ns=float(histogram.min),
                         max_ns=float(histogram.max))


def store_stream(stream: Any) -> Optional[StoredSamples]:
    """The stored form of a ``streams.SampleStream``: its exact samples while it has them, its
    histogram past its cap; None when it holds none."""
    if stream is None or stream.count == 0:
        return None
    if stream.histogram is not None:
        return store_histogram(stream.histogram)
    return store_sorted(stream.sorted_ns())


def pack(values: np.ndarray) -> str:
    """Non-negative integers as base64 of zlib of (one byte: the width, then the values'
    little-endian bytes plane by plane): the high planes of small numbers are runs of zeros,
    which zlib all but removes."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and int(values.min()) < 0:
        raise ValueError("pack takes non-negative integers")
    top = int(values.max()) if values.size else 0
    width = next(w for w in _WIDTHS if top < 1 << (8 * w - (1 if w == 8 else 0)))
    planes = values.astype(f"<u{width}").view(np.uint8).reshape(-1, width).T.tobytes()
    return base64.b64encode(zlib.compress(bytes([width]) + planes, 9)).decode("ascii")


def unpack(text: str, where: str, *, size: Optional[int] = None,
           at_most: int = MAX_VALUES) -> np.ndarray:
    """What ``pack`` packed (exactly ``size`` values when given, else at most ``at_most``); a
    ``UserError`` naming ``where`` when the text is not that (the output is bounded: no
    decompression bomb gets through)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        limit = 1 + 8 * (at_most if size is None else size)
        payload = inflater.decompress(raw, limit + 1)
    except (binascii.Error, UnicodeEncodeError, zlib.error, ValueError) as exc:
        raise UserError(f"{where}: not base64 zlib data ({exc})") from None
    if not payload or payload[0] not in _WIDTHS or not inflater.eof or len(payload) > limit:
        raise UserError(f"{where}: not packed integers (bad width or length)")
    width = payload[0]
    body = np.frombuffer(payload, dtype=np.uint8, offset=1)
    if body.size % width or (size is not None and body.size // width != size):
        raise UserError(f"{where}: holds {body.size // width} values, expected {size}")
    values = body.reshape(width, -1).T.copy().view(f"<u{width}").ravel()
    if width == 8 and values.size and int(values.max()) >= 1 << 62:
        raise UserError(f"{where}: a value is out of range")
    return values.astype(np.int64)
