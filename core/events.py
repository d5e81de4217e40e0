"""The one stream of events a run emits, read by every view (headless progress, the TUI, the
session writer).

The engine calls a sink, ``Callable[[Event], None]``, from the one thread that runs it; a sink
must return quickly and must not call back into the engine. Events are emitted by the engine's
collector, never from inside a timing loop, and they are plain frozen data that pickle (the TUI
receives them from an engine in another process). ``Samples`` carries only the samples that
arrived since the previous ``Samples`` of the same configuration, so a consumer that keeps them
all sees every measured sample exactly once (warm-up samples never appear).

Per configuration the engine emits, in order::

    ConfigStarted, PhaseChanged("loading"), [PhaseChanged("compiling")], PhaseChanged("warmup"),
    ModelLoaded, WarmupFinished, PhaseChanged("measuring"), (Samples | Progress)*,
    [PhaseChanged("stopping")], ConfigFinished

and ``Utilisation`` about once a second at any point; a configuration that fails or is stopped
ends early with its ``ConfigFinished``. ``RunStarted`` comes first and ``RunFinished`` last. A
search emits ``SearchUpdated`` between configurations (after each result, and once when it
ends), with what it has found so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, Union

from .measurement import ConfigResult
from .specs import RunConfig, RunPlan
from .streams import Block

#: Phases a configuration passes through, in order.
PHASES = ("loading", "compiling", "warmup", "measuring", "stopping")


@dataclass(frozen=True)
class RunStarted:
    plan: RunPlan
    host: Dict[str, Any] = field(hash=False)
    started_at: float = 0.0  # time.time()


@dataclass(frozen=True)
class ConfigStarted:
    index: int
    #: How many configurations the run has, when the strategy knows (a sweep does).
    total: Optional[int]
    config: RunConfig
    #: What produced it: {"strategy": "sweep"}; a search adds its step.
    trial: Dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class PhaseChanged:
    index: int
    phase: str
    detail: str = ""


@dataclass(frozen=True)
class ModelLoaded:
    """Facts about the model (source, name, parameter count, size in MB) once it is loaded."""

    index: int
    model: Dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class WarmupFinished:
    index: int
    first_inference_ms: float
    iterations: int
    stable: bool
    duration_s: float


@dataclass(frozen=True)
class Samples:
    """New samples of one configuration: start and end of each inference in ns since measuring
    began (``block.latency_ns`` is their difference)."""

    index: int
    block: Block = field(hash=False, compare=False)
    #: Seconds since measuring began, at the moment these samples were collected.
    elapsed_s: float = 0.0

    @property
    def latencies_ns(self) -> Any:
        return self.block.latency_ns


@dataclass(frozen=True)
class Progress:
    index: int
    elapsed_s: float
    samples: int
    #: Fraction of the stop rule reached (0..1), or None when it cannot be known.
    fraction: Optional[float] = None
    #: Early stop: how far p99's confidence interval reaches from p99, in % of p99 (the wider
    #: side), at the collector's last check; None when early stop is off or the interval is
    #: not known yet (too few samples).
    early_stop: Optional[float] = None
    #: Early stop's target (+-%), None when early stop is off: the configuration ends once
    #: ``early_stop`` is within it (and the minimums are met).
    early_stop_target: Optional[float] = None


@dataclass(frozen=True)
class Utilisation:
    """The monitors' newest readings: ``((monitor name, (Reading, ...)), ...)``."""

    index: Optional[int]
    groups: Tuple[Tuple[str, Tuple[Any, ...]], ...] = field(hash=False)


@dataclass(frozen=True)
class ConfigFinished:
    """A configuration ended; ``result.status`` is "finished", "failed" or "cancelled"."""

    index: int
    result: ConfigResult


@dataclass(frozen=True)
class SearchUpdated:
    """A search's outcome so far (``core.search``'s JSON contract), between configurations."""

    outcome: Dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class RunFinished:
    results: Tuple[ConfigResult, ...]
    cancelled: bool = False


Event = Union[
    RunStarted, ConfigStarted, PhaseChanged, ModelLoaded, WarmupFinished, Samples, Progress,
    Utilisation, ConfigFinished, SearchUpdated, RunFinished,
]
Sink = Callable[[Event], None]


def fan_out(*sinks: Sink) -> Sink:
    """One sink that hands each event to every sink in order."""

    def sink(event: Event) -> None:
        for each in sinks:
            each(event)

    return sink
