"""Frozen results of measuring: latency summaries, the per-second timeline, throughput and one
configuration's outcome.

Produced by ``stats`` (pure functions), ``streams`` and ``engine``; read by ``session`` and the
views. Latencies are milliseconds here; the timing loop records integer nanoseconds. Each
summary serialises itself as one unit (``to_dict`` / ``from_dict``), so that what is saved is
what is loaded, intervals and warnings included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .fields import Fields
from .specs import RunConfig

if TYPE_CHECKING:
    from .samplestore import StoredSamples

#: Percentiles every summary carries, as (session key, quantile).
PERCENTILES: Tuple[Tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p99.9", 0.999),
)
PERCENTILE_KEYS = tuple(key for key, _ in PERCENTILES)
STATUSES = ("finished", "failed", "cancelled")


@dataclass(frozen=True)
class LatencySummary:
    """Latency statistics of one stream of samples, in milliseconds."""

    count: int
    min: float
    mean: float
    std: float
    max: float
    #: Session key ("p50", "p99.9", ...) to value.
    percentiles: Dict[str, float] = field(hash=False)
    #: Distribution-free confidence intervals (e.g. for "p50" and "p99"): key to (low, high);
    #: a key is absent when there are too few samples to bound that percentile.
    intervals: Dict[str, Tuple[float, float]] = field(default_factory=dict, hash=False)
    confidence: float = 0.95
    #: True when every sample was kept; False once past the sample cap, when percentiles
    #: come from a log-bucketed histogram with at most ``relative_error`` error.
    exact: bool = True
    relative_error: float = 0.0
    warnings: Tuple[str, ...] = ()

    def __getitem__(self, key: str) -> float:
        return self.percentiles[key]

    def values(self) -> Dict[str, float]:
        """min, mean, std, the percentiles and max: the figures a table shows."""
        out: Dict[str, float] = {"min": self.min, "mean": self.mean, "std": self.std}
        out.update(self.percentiles)
        out["max"] = self.max
        return out

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"count": self.count}
        out.update(self.values())
        out["ci"] = {key: [low, high] for key, (low, high) in self.intervals.items()}
        out["confidence"] = self.confidence
        out["exact"] = self.exact
        out["relative_error"] = self.relative_error
        out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "LatencySummary":
        f = Fields(data, where)
        intervals = {}
        for key, pair in f.items("ci", {}):
            bounds = Fields({key: pair}, f.path("ci")).numbers(key)
            if len(bounds) != 2:
                raise f.fail(f"ci.{key}", "must be a pair [low, high]")
            intervals[key] = (float(bounds[0]), float(bounds[1]))
        return cls(
            count=f.number("count", integer=True, minimum=0),
            min=float(f.number("min")), mean=float(f.number("mean")),
            std=float(f.number("std", minimum=0)), max=float(f.number("max")),
            percentiles={key: float(f.number(key)) for key in PERCENTILE_KEYS},
            intervals=intervals,
            confidence=float(f.number("confidence", 0.95)),
            exact=f.boolean("exact", True),
            relative_error=float(f.number("relative_error", 0.0, minimum=0)),
            warnings=f.strings("warnings", []),
        )


@dataclass(frozen=True)
class Throughput:
    """Inferences and samples (inferences x batch) per second over the measuring time; and, as
    NeuronPerf reports it, the average and the peak of samples per second in 1-second buckets of
    completion times (the average leaving out the first and last bucket: ramp-up and cut-off)."""

    inferences_per_s: float
    samples_per_s: float
    avg_samples_per_s: Optional[float] = None
    peak_samples_per_s: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"inferences_per_s": self.inferences_per_s,
                               "samples_per_s": self.samples_per_s}
        if self.avg_samples_per_s is not None:
            out["avg_samples_per_s"] = self.avg_samples_per_s
            out["peak_samples_per_s"] = self.peak_samples_per_s
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Throughput":
        f = Fields(data, where)
        avg, peak = f.number("avg_samples_per_s", None, minimum=0), \
            f.number("peak_samples_per_s", None, minimum=0)
        return cls(float(f.number("inferences_per_s", minimum=0)),
                   float(f.number("samples_per_s", minimum=0)),
                   None if avg is None else float(avg), None if peak is None else float(peak))


@dataclass(frozen=True)
class Timeline:
    """A configuration's measurement second by second, from each sample's end time.

    Bucket ``i`` holds the inferences that completed in ``[i, i + 1) * bucket_s`` after measuring
    began. Counts are exact; the percentiles come from log buckets and are within
    ``relative_error`` of the exact ones (None for a bucket with no completion).
    """

    bucket_s: float
    inferences: Tuple[int, ...]
    p50_ms: Tuple[Optional[float], ...]
    p99_ms: Tuple[Optional[float], ...]
    max_ms: Tuple[Optional[float], ...]
    relative_error: float = 0.0

    def __len__(self) -> int:
        return len(self.inferences)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "bucket_s": self.bucket_s, "relative_error": self.relative_error,
            "inferences": list(self.inferences), "p50_ms": list(self.p50_ms),
            "p99_ms": list(self.p99_ms), "max_ms": list(self.max_ms),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Timeline":
        f = Fields(data, where)
        inferences = f.numbers("inferences", integer=True, minimum=0)
        columns = {key: f.numbers(key, minimum=0, nullable=True)
                   for key in ("p50_ms", "p99_ms", "max_ms")}
        for key, values in columns.items():
            if len(values) != len(inferences):
                raise f.fail(key, f"has {len(values)} entries for {len(inferences)} buckets")
        return cls(
            bucket_s=float(f.number("bucket_s", minimum=1e-6)), inferences=inferences,
            p50_ms=_floats(columns["p50_ms"]), p99_ms=_floats(columns["p99_ms"]),
            max_ms=_floats(columns["max_ms"]),
            relative_error=float(f.number("relative_error", 0.0, minimum=0)),
        )


def _floats(values: Tuple[Any, ...]) -> Tuple[Optional[float], ...]:
    return tuple(None if v is None else float(v) for v in values)


@dataclass(frozen=True)
class ConfigResult:
    """The outcome of one configuration, finished, failed or cancelled."""

    config: RunConfig
    status: str  # "finished" | "failed" | "cancelled"
    error: Optional[str] = None
    #: How it failed (``errors.ERROR_KINDS``), None when it did not.
    error_kind: Optional[str] = None
    #: The traceback of the failure, when one was raised (for engine.log and the session).
    traceback: Optional[str] = None
    samples: int = 0
    duration_s: float = 0.0
    first_inference_ms: Optional[float] = None
    warmup_iterations: int = 0
    warmup_stable: Optional[bool] = None
    #: Host-clock latency of the inference (what every device is measured by).
    latency: Optional[LatencySummary] = None
    #: Device-side latency (CUDA events), for backends that can time the device itself.
    device_latency: Optional[LatencySummary] = None
    throughput: Optional[Throughput] = None
    #: Separate summaries when a preprocess / postprocess step is timed: "end_to_end",
    #: "preprocess", "postprocess" (the inference itself is ``latency``).
    stages: Dict[str, LatencySummary] = field(default_factory=dict, hash=False)
    timeline: Optional[Timeline] = None
    #: Per reading of the monitors during measuring: label -> {"mean", "max", "unit", ...}.
    utilisation: Dict[str, Dict[str, Any]] = field(default_factory=dict, hash=False)
    #: What produced this configuration: {"strategy": "sweep", ...}; searches add their step.
    trial: Dict[str, Any] = field(default_factory=dict, hash=False)
    warnings: Tuple[str, ...] = ()
    #: Backend facts for this configuration (threads used, device name, ...); JSON values only.
    details: Dict[str, Any] = field(default_factory=dict, hash=False)
    #: The ``latency`` samples themselves, compactly (``samplestore``), for ``compare``; None
    #: in sessions from before they were stored.
    latency_samples: Optional["StoredSamples"] = field(default=None, hash=False)
