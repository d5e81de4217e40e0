"""What a copy is given (``CopyJob``) and what its warm-up reports (``WarmupReport``): plain
data, so that both pickle into and out of a spawned copy process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .backends.base import Artifact
from .specs import InputSpec, ModelSpec, RunConfig, StopRule, WarmupPolicy


@dataclass(frozen=True)
class CopyJob:
    """What one copy needs; plain data, so that it pickles into a spawned process."""

    model: ModelSpec
    inputs: InputSpec
    config: RunConfig
    copy_index: int
    warmup: WarmupPolicy
    threads: Optional[int]
    #: The backend class, as ``module:Class``: a copy process imports exactly this one.
    backend: str
    artifact: Artifact
    #: The stop rule, for its per-inference timeout.
    stop: StopRule = StopRule()
    #: The environment the copy's process starts with (``Backend.process_env``).
    env: Dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WarmupReport:
    first_ns: int
    iterations: int
    stable: bool
    duration_s: float
    load_s: float = 0.0
    #: Median warm latency (ns): what the automatic per-inference timeout is relative to.
    median_ns: Optional[float] = None
    model: Dict[str, Any] = field(default_factory=dict, hash=False)
    device: Dict[str, Any] = field(default_factory=dict, hash=False)
    #: What the model was fed (``inputs.build_batches``): kind, batch size, distinct batches.
    inputs: Dict[str, Any] = field(default_factory=dict, hash=False)
