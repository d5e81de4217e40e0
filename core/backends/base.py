"""The device-backend interface: the one seam between the engine and a device.

Shaped like httpx's ``BaseTransport``: one small abstract base, real implementations beside it
(CPU now; CUDA and Neuron next) and a fake one the tests drive with a handler. A configuration
meets its backend in four steps, each where it belongs:

1. class level, in the planner's process, creating nothing: ``check_options`` (the ``OPTIONS``
   schema), ``copy_modes``, ``unavailable()`` (why this host cannot run it), and
   ``process_env(device, options, copy_index, copies)``, the environment a copy process must start with
   (``NEURON_RT_VISIBLE_CORES``, ``CUDA_VISIBLE_DEVICES``); the engine sets it before the copy's
   interpreter starts, so it is there before anything imports the device's runtime;
2. ``compile(source, batch_size) -> Artifact``, once per configuration in the engine's process
   (a Neuron trace takes minutes; the CPU's is the identity): picklable, with a cache key;
3. ``load(artifact, source, copy_index=, threads=) -> PreparedModel`` in each copy: the model on
   its device with its inputs placed there once;
4. ``prepared.lane(worker_index) -> Lane`` for each worker: its own ``infer``, its own ``wait``
   (a CUDA stream's synchronize, not the whole device's) and optionally its own device clock.

The timing loop then calls, per sample::

    t0 = perf_counter_ns(); lane.infer(); lane.wait(); t1 = perf_counter_ns()

so ``infer`` must do the inference and nothing else (no host-to-device copy, no allocation the
backend could have done in ``load``), and ``wait`` must block until the device has really
finished that worker's work. A backend that cannot wait for completion says so in
``DeviceFacts.timing`` rather than reporting launch times as latency. Backends are context
managers: ``close`` releases runtime and monitor handles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager, Dict, Mapping, Optional, Tuple

from ..errors import UserError
from ..specs import COPY_MODES


@dataclass(frozen=True)
class Option:
    """One entry of a backend's ``OPTIONS`` schema (the preset's ``[device]`` table)."""

    kind: type
    help: str = ""
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None


def check_options(device: str, schema: Mapping[str, Option], options: Mapping[str, Any],
                  hint: str = "") -> Dict[str, Any]:
    """``options`` checked against ``schema``: unknown keys, wrong types, values out of range or
    not among the choices are a ``UserError`` naming the option."""
    checked: Dict[str, Any] = {}
    for key, value in options.items():
        option = schema.get(key)
        if option is None:
            known = ", ".join(schema) or "none"
            raise UserError(f"device option {key!r}: unknown for the {device} device "
                            f"(known: {known}{'; ' + hint if hint else ''})")
        if option.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) != (option.kind is bool) or not isinstance(value, option.kind):
            raise UserError(f"device option {key!r}: {value!r} is not a {option.kind.__name__}")
        if option.kind is float and not math.isfinite(value):
            raise UserError(f"device option {key!r}: {value!r} is not a finite number")
        if option.choices and value not in option.choices:
            raise UserError(f"device option {key!r}: {value!r} is not one of "
                            f"{', '.join(map(str, option.choices))}")
        if option.minimum is not None and value < option.minimum:
            raise UserError(f"device option {key!r}: must be at least {option.minimum:g}, "
                            f"not {value!r}")
        checked[key] = value
    return checked


@dataclass(frozen=True)
class DeviceFacts:
    """What a backend knows about its device, recorded in the session."""

    device: str
    name: str
    #: How latency is timed: "host clock, synchronous" (CPU), "host clock after synchronize"...
    timing: str
    details: Dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> Dict[str, Any]:
        return {"device": self.device, "name": self.name, "timing": self.timing, **self.details}


@dataclass(frozen=True)
class Artifact:
    """What ``compile`` made of a model for one configuration, handed to every copy.

    Plain data (it pickles into a copy process). ``path`` is a compiled model on disk when there
    is one; None means each copy loads the model from its source (the CPU's identity compile).
    """

    key: str
    backend: str
    batch_size: int
    path: Optional[str] = None
    compile_s: float = 0.0
    #: True when ``path`` came from the on-disk cache rather than a compile in this run.
    cached: bool = False
    details: Dict[str, Any] = field(default_factory=dict, hash=False)


class Lane:
    """One worker's way to the device: what its timing loop calls, and nothing it shares.

    ``wait`` is None on a synchronous device (the loop then does not even call it);
    ``device_ns``, when given, returns the device's own time of the last inference, read after
    ``wait``. ``infer_on`` and ``place`` serve the pipeline path (a preprocess step's output is
    placed and inferred on), ``context`` is entered once around the worker's loop.
    """

    __slots__ = ("infer", "wait", "device_ns", "infer_on", "place", "context")

    def __init__(self, infer: Callable[[], Any], *, wait: Optional[Callable[[], Any]] = None,
                 device_ns: Optional[Callable[[], int]] = None,
                 infer_on: Optional[Callable[[Any], Any]] = None,
                 place: Optional[Callable[[Any], Any]] = None,
                 context: Optional[Callable[[], ContextManager[Any]]] = None) -> None:
        self.infer = infer
        self.wait = wait
        self.device_ns = device_ns
        self.infer_on = infer_on
        self.place = place or (lambda inputs: inputs)
        self.context = context or contextlib.nullcontext


class PreparedModel(ABC):
    """A model on its device with its inputs placed, for one copy."""

    @abstractmethod
    def lane(self, worker: int) -> Lane:
        """The lane of worker ``worker`` (0-based); each worker gets its own."""

    def report(self) -> Dict[str, Any]:
        """Device figures for the result once measuring is over (peak memory...)."""
        return {}

    def close(self) -> None:
        """Release what ``load`` took (device memory, a runtime handle)."""


class Backend(ABC):
    """A kind of device. One instance serves every copy of a configuration in its process."""

    #: The ``device`` name a preset or ``--device`` uses (its kind, before any ``:index``).
    name: ClassVar[str] = ""
    #: The ``[device]`` options this backend takes.
    OPTIONS: ClassVar[Mapping[str, Option]] = {}
    #: How copies of a configuration may run on this device.
    copy_modes: ClassVar[Tuple[str, ...]] = COPY_MODES
    #: True when ``compile`` does real work worth a "compiling" phase (and a cache).
    compiles: ClassVar[bool] = False
    #: Said after the known options when an unknown one is given.
    OPTIONS_HINT: ClassVar[str] = ""
    #: Options that only place copies (which cores) and so are not part of a compile's key.
    PLACEMENT_OPTIONS: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, options: Optional[Mapping[str, Any]] = None,
                 device: Optional[str] = None) -> None:
        self.options: Dict[str, Any] = self.check_options(options or {})
        #: The device name as the plan gives it ("cuda:1", "cuda:all"); the kind by default.
        self.device = device or self.name

    # -- class level: planning, no device touched -------------------------------------------
    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        return check_options(cls.name, cls.OPTIONS, options, cls.OPTIONS_HINT)

    @classmethod
    def unavailable(cls, options: Mapping[str, Any], device: str) -> Optional[str]:
        """Why this device cannot be used on this host (None when it can); may import the
        device's packages, so the engine calls it, not the planner."""
        return None

    @classmethod
    def plan_check(cls, options: Mapping[str, Any], device: str, copies: int) -> Optional[str]:
        """What this host's device cannot take of a configuration (more copies than cores),
        found cheaply when planning; None when it can, or when it cannot tell yet."""
        return None

    @classmethod
    def inputs_problem(cls, options: Mapping[str, Any], inputs: Any) -> Optional[str]:
        """What these options cannot do with the model's inputs (one batch, built on the host
        when planning), so that it is bad input (exit 2) rather than every configuration
        failing; None when they can."""
        return None

    @classmethod
    def units(cls, options: Mapping[str, Any], device: str) -> Optional[int]:
        """How many copies ``copies = "all"`` means here (one per NeuronCore), None if this
        device has no such count or it cannot be read."""
        return None

    @classmethod
    def process_env(cls, device: str, options: Mapping[str, Any], copy_index: int, copies: int
                    ) -> Dict[str, str]:
        """Environment variables copy ``copy_index`` of ``copies`` on ``device`` must start its
        process with."""
        return {}

    # -- instance: in the engine's process and in each copy ---------------------------------
    @abstractmethod
    def facts(self) -> DeviceFacts:
        """Describe the device (cheap; called once per copy)."""

    def cache_key(self, source: Any, batch_size: int) -> str:
        """What identifies a compiled artifact: the model source and options, the inputs, the
        batch size, this backend and its options."""
        options = {k: v for k, v in self.options.items() if k not in self.PLACEMENT_OPTIONS}
        return stable_hash({
            "backend": self.name, "options": options, "batch_size": batch_size,
            "model": source.fingerprint(),
        })

    def compile(self, source: Any, batch_size: int) -> Artifact:
        """Make what every copy of a configuration loads. The default is the identity: each
        copy loads the model from its source (``source.load()`` is never called here)."""
        return Artifact(key=self.cache_key(source, batch_size), backend=self.name,
                        batch_size=batch_size)

    @abstractmethod
    def load(self, artifact: Artifact, source: Any, *, copy_index: int,
             threads: Optional[int]) -> PreparedModel:
        """Put the model ``artifact`` describes on the device for one copy, with the inputs
        ``source.batch(artifact.batch_size)`` placed there once."""

    def setup_guard(self) -> ContextManager[Any]:
        """Held around each copy's whole setup (load, lanes, warm-up). A device whose setup
        must not overlap another copy's in the same process (a CUDA graph capture) returns a
        lock shared by the process; the others, nothing."""
        return contextlib.nullcontext()

    def first_call_compiles(self) -> bool:
        """True when a copy's first inference compiles (``torch.compile``): it is given the cold
        first call's timeout (``warmup.first_timeout_s``) even with the model loaded before."""
        return False

    def configure_process(self, copy_index: int, threads: Optional[int]) -> None:
        """Process-wide state in a copy's own process, before the model loads (intra-op
        threads); the environment from ``process_env`` is already set."""

    def close(self) -> None:
        """Release runtime and monitor handles."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def entered(guard: Any, stopped: Callable[[], bool]) -> Optional[ContextManager[Any]]:
    """``Backend.setup_guard()`` held: a lock is waited for only while ``stopped()`` is False
    (None once it is true: a copy given up on must not go on to load); anything else, a
    context manager, is returned to be entered as it is."""
    acquire = getattr(guard, "acquire", None)
    if acquire is None:
        return guard
    while not acquire(timeout=0.05):
        if stopped():
            return None
    held = contextlib.ExitStack()
    held.callback(guard.release)
    return held


def stable_hash(value: Any) -> str:
    """A short hash of JSON-able data that is the same in every process and every run."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
