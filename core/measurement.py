"""Frozen results of measuring: one configuration's latency summary, throughput and outcome.

Produced by ``stats`` (pure functions) and ``engine``; read by ``session`` and the views.
Latencies are milliseconds here; the timing loop records integer nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .specs import RunConfig

#: Percentiles every summary carries, as (session key, quantile).
PERCENTILES: Tuple[Tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p99.9", 0.999),
)


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

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"min": self.min, "mean": self.mean, "std": self.std}
        out.update(self.percentiles)
        out["max"] = self.max
        return out


@dataclass(frozen=True)
class Throughput:
    inferences_per_s: float
    samples_per_s: float

    def to_dict(self) -> Dict[str, float]:
        return {"inferences_per_s": self.inferences_per_s, "samples_per_s": self.samples_per_s}


@dataclass(frozen=True)
class ConfigResult:
    """The outcome of one configuration, finished, failed or cancelled."""

    config: RunConfig
    status: str  # "finished" | "failed" | "cancelled"
    error: Optional[str] = None
    samples: int = 0
    duration_s: float = 0.0
    first_inference_ms: Optional[float] = None
    warmup_iterations: int = 0
    warmup_stable: Optional[bool] = None
    latency: Optional[LatencySummary] = None
    throughput: Optional[Throughput] = None
    #: Separate summaries when a preprocess / postprocess step is timed: "end_to_end",
    #: "preprocess", "postprocess" (the inference itself is ``latency``).
    stages: Dict[str, LatencySummary] = field(default_factory=dict, hash=False)
    warnings: Tuple[str, ...] = ()
    #: Backend facts for this configuration (threads used, device name, ...).
    details: Dict[str, Any] = field(default_factory=dict, hash=False)
