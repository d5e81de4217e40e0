"""Frozen descriptions of what to measure: the model, its inputs, the sweep and the stop rules.

Specs are plain data (strings, numbers, tuples) so that they pickle into a spawned copy process
and serialise into the session file unchanged. ``presets`` builds them from TOML, ``plan`` from
a preset plus command-line overrides; nothing downstream changes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from .searchspec import SearchSpec

COPY_MODES = ("thread", "process")
#: How load is offered: "closed" (each worker's next inference as soon as its last returns) or
#: "open" (requests arrive at a rate, whatever the copies do).
LOAD_MODES = ("closed", "open")
#: How open-loop requests arrive: exponential gaps (a Poisson stream) or evenly spaced.
ARRIVALS = ("poisson", "constant")
#: How texts are padded, and how a dataset's examples are taken.
PADDINGS = ("max_length", "longest")
ORDERS = ("cycle", "sample")


@dataclass(frozen=True)
class TensorSpec:
    """One synthetic input tensor; ``shape`` leaves out the batch dimension."""

    name: str
    shape: Tuple[int, ...]
    dtype: str = "float32"
    #: Integer tensors draw from ``[low, high)`` (a vocabulary, a category count);
    #: floating tensors from a normal distribution and ignore both.
    low: int = 0
    high: int = 2


@dataclass(frozen=True)
class InputSpec:
    """How to make the model's inputs: synthetic tensors, or sample texts for a tokenizer.

    Empty means "whatever the model source provides" (built-ins and factories that return
    example inputs know their own).
    """

    tensors: Tuple[TensorSpec, ...] = ()
    texts: Tuple[str, ...] = ()
    max_length: int = 128
    #: Pass the tensors as keyword arguments (``model(**inputs)``) rather than positionally.
    as_kwargs: bool = False
    seed: int = 0
    #: How a batch of texts is padded: "max_length" (one shape for every batch, what a Neuron
    #: model compiled for a shape needs) or "longest" (to the batch's longest text).
    padding: str = "max_length"
    #: Inputs as given, not described: a reference to a value the model is called with, or to a
    #: function of the batch size that builds it (``object:N`` from the Python API,
    #: ``module:attr`` or ``path/file.py:attr``).
    provider: Optional[str] = None
    #: A reference (as ``provider``) to a dataset: a sequence or ``torch.utils.data.Dataset``
    #: of single examples, collated into batches and cycled per inference.
    dataset: Optional[str] = None
    #: A file of texts, one per line, cycled per inference (a text model's dataset).
    texts_file: Optional[str] = None
    #: How a dataset's examples are taken: "cycle" (in order) or "sample" (seeded, at random).
    order: str = "cycle"
    #: The most distinct batches built per configuration, all placed on the device before
    #: timing and cycled per inference.
    max_batches: int = 64
    #: The batch size of inputs that are already batched (the plan then runs only that), when
    #: it cannot be read from their leading dimension; also what a model that takes no inputs
    #: processes per call, when the user says so.
    batch_size: Optional[int] = None

    @property
    def is_empty(self) -> bool:
        return not self.tensors and not self.texts and not self.provider and \
            not self.dataset and not self.texts_file


@dataclass(frozen=True)
class ModelSpec:
    """Where the model comes from.

    ``source`` is one of ``builtin:NAME``, ``hf:NAME_OR_DIR``, ``package.module:attr``,
    ``path/to/file.py:attr`` or a TorchScript file (``*.pt``, ``*.ts``, ``torchscript:PATH``).
    ``options`` are passed to the source (a built-in's sizes, ``from_pretrained`` keywords).
    """

    source: str
    options: Dict[str, Any] = field(default_factory=dict, hash=False)
    preprocess: Optional[str] = None
    postprocess: Optional[str] = None


@dataclass(frozen=True)
class WarmupPolicy:
    """When warm-up may end: once two consecutive windows agree, within these bounds.

    The run stops warming up at the first of ``max_iterations`` or ``max_s``; before
    ``min_iterations`` and ``min_s`` it never stops, stable or not.
    """

    min_iterations: int = 10
    max_iterations: int = 5000
    min_s: float = 0.0
    max_s: float = 30.0
    window: int = 20
    #: Two windows agree when their medians, and their interquartile ranges relative to
    #: the median, differ by at most this fraction.
    tolerance: float = 0.05
    #: The longest the first (cold) inference may take: it pays for lazy initialisation.
    first_timeout_s: float = 600.0


@dataclass(frozen=True)
class StopRule:
    """When measuring ends: after ``duration_s``, after ``samples`` inferences, or the first.

    ``timeout_s`` bounds one inference (warm-up's after the first, and measuring's); None means
    ``TIMEOUT_FACTOR`` times the warm-up's median latency, at least ``TIMEOUT_FLOOR_S``. An
    inference past it fails its configuration (``error_kind: timeout``) and the sweep goes on.

    Early stop (``early_stop_pct``): a configuration also ends once p99's confidence interval
    lies within +-``early_stop_pct`` % of p99, but never before ``early_stop_min_s`` of
    measuring and ``early_stop_min_samples`` samples (LoadGen's minimum duration and query
    count); ``duration_s`` and ``samples`` stay the maximum.
    """

    duration_s: Optional[float] = 10.0
    samples: Optional[int] = None
    timeout_s: Optional[float] = None
    early_stop_pct: Optional[float] = None
    early_stop_min_s: float = 1.0
    early_stop_min_samples: int = 1000

    def may_stop_early(self, elapsed_s: float, samples: int) -> bool:
        """Whether early stop is on and its minimums are met."""
        return (self.early_stop_pct is not None and elapsed_s >= self.early_stop_min_s
                and samples >= self.early_stop_min_samples)

    @staticmethod
    def interval_width_pct(p99: float, low: float, high: float) -> float:
        """How far p99's interval reaches from p99, in percent of it (the wider side)."""
        if p99 <= 0:
            return float("inf")
        return 100.0 * max(p99 - low, high - p99) / p99

    def early_stop_closeness(self, elapsed_s: float, samples: int,
                             width_pct: Optional[float]) -> float:
        """How close early stop is (0..1): the least advanced of its minimum duration, its
        minimum count and the interval's width against its target (1: it stops now)."""
        if self.early_stop_pct is None:
            return 0.0
        tight = 0.0 if width_pct is None else min(1.0, self.early_stop_pct / max(width_pct, 1e-12))
        parts = [tight]
        if self.early_stop_min_s > 0:
            parts.append(elapsed_s / self.early_stop_min_s)
        if self.early_stop_min_samples > 0:
            parts.append(samples / self.early_stop_min_samples)
        return max(0.0, min(1.0, *parts))

    def timeout_ns(self, median_ns: Optional[float]) -> int:
        """The per-inference timeout, given the warm-up's median latency so far."""
        if self.timeout_s is not None:
            return int(self.timeout_s * 1e9)
        return int(max(TIMEOUT_FLOOR_S * 1e9, TIMEOUT_FACTOR * (median_ns or 0.0)))


#: The automatic per-inference timeout: this many times the warm-up's median latency...
TIMEOUT_FACTOR = 100.0
#: ...and never less than this.
TIMEOUT_FLOOR_S = 10.0


@dataclass(frozen=True)
class RunConfig:
    """One point of a sweep: the device, the batch size and how many copies and workers."""

    device: str = "cpu"
    batch_size: int = 1
    copies: int = 1
    workers_per_copy: int = 1
    copy_mode: str = "thread"
    #: Intra-op threads per copy (CPU); ``None`` shares the host's cores out among copies.
    threads_per_copy: Optional[int] = None
    #: Backend options from the preset's ``[device]`` table (fake latencies, a CUDA index).
    device_options: Dict[str, Any] = field(default_factory=dict, hash=False)
    #: Open loop: requests per second offered to all copies together, whatever they do
    #: (``openloop``); None: the closed loop.
    rate: Optional[float] = None
    #: How open-loop requests arrive: "poisson" or "constant" (``ARRIVALS``).
    arrivals: str = "poisson"

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def label(self) -> str:
        label = f"batch {self.batch_size}, {self.copies} x {self.workers_per_copy}"
        return f"{label}, {self.rate:g}/s {self.arrivals}" if self.rate is not None else label

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        if self.rate is None:  # a closed-loop configuration is saved as it always was
            del out["rate"], out["arrivals"]
        return out


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs: resolved from a preset and overrides, then only read."""

    name: str
    model: ModelSpec
    inputs: InputSpec
    configs: Tuple[RunConfig, ...]
    stop: StopRule
    warmup: WarmupPolicy
    #: Latencies kept exactly per configuration; past it, a log-bucketed histogram.
    sample_cap: int = 2_000_000
    #: The preset as resolved (after overrides), recorded in the session.
    preset: Dict[str, Any] = field(default_factory=dict, hash=False)
    #: The sweep's axes as given: "batch_sizes", "copies", "workers" (and, in open loop,
    #: "rates") -> values, in order.
    axes: Dict[str, Tuple[int, ...]] = field(default_factory=dict, hash=False)
    #: A search instead of the sweep: the engine builds its strategy (``searchspec``).
    search: Optional[SearchSpec] = None

    def axis(self, name: str) -> Tuple[int, ...]:
        """The values the plan sweeps on one axis ("batch_sizes", "copies" or "workers")."""
        if name in self.axes:
            return tuple(self.axes[name])
        attribute = {"batch_sizes": "batch_size", "copies": "copies",
                     "workers": "workers_per_copy", "rates": "rate"}[name]
        return tuple(dict.fromkeys(getattr(c, attribute) for c in self.configs))
