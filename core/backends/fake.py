"""A fake device for tests and demonstrations, as httpx's ``MockTransport`` is for transports.

It ignores the model and spends a scripted time per inference. The script is a handler
``handler(batch, copy, worker, i) -> milliseconds`` (``i`` counts that worker's calls; raising
fails the inference), given directly (``FakeBackend(options, handler=fn)``, thread copies) or as
a ``module:attr`` in the ``handler`` option (any copy mode). Without one, the time is
``latency_ms + per_sample_ms * batch`` plus seeded normal jitter (``jitter_ms``), ``cold_ms``
extra on a copy's first call and a warm-up that decays over ``decay_iterations`` calls.

Faults on demand: ``fail_on = "compile" | "load" | "infer"`` (``fail_after`` inferences),
``hang_after`` (that inference never returns), ``compile_ms`` / ``load_ms`` (slow steps).
``capacity`` limits how many inferences run at once in a process (the rest queue, as on a real
device). ``mode = "busy"`` spins on the clock (precise, holds the GIL); ``"sleep"`` sleeps
(releases the GIL, so thread workers overlap like a real device).
"""

from __future__ import annotations

import os
import threading
import time
from time import perf_counter_ns
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional

import numpy as np

from ..errors import UserError
from .base import Artifact, Backend, DeviceFacts, Lane, Option, PreparedModel

Handler = Callable[[int, int, int, int], float]

_SCHEDULE = 4096


class FakeDeviceError(RuntimeError):
    """What the fake device raises when told to fail."""


class _CopyState:
    """What the lanes of one copy share: the cold first call and the decaying warm-up."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.cold_ns = int(options.get("cold_ms", 0.0) * 1e6)
        self.decay_left = int(options.get("decay_iterations", 0))
        self.decay_total = max(self.decay_left, 1)
        self.decay_ns = int(options.get("decay_ms", options.get("latency_ms", 1.0)) * 1e6)

    def extra_ns(self) -> int:
        with self.lock:
            extra = self.cold_ns if self.calls == 0 else 0
            self.calls += 1
            if self.decay_left > 0:
                extra += self.decay_ns * self.decay_left // self.decay_total
                self.decay_left -= 1
            return extra


class FakePrepared(PreparedModel):
    def __init__(self, backend: "FakeBackend", batch_size: int, copy_index: int) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self.copy_index = copy_index
        self.state = _CopyState(backend.options)

    def lane(self, worker: int) -> Lane:
        options = self.backend.options
        handler = self.backend.handler
        batch, copy_index = self.batch_size, self.copy_index
        state, capacity = self.state, self.backend.capacity
        busy = options.get("mode", "busy") == "busy"
        fail_after = options["fail_after"] if options.get("fail_on") == "infer" else -1
        hang_after = options.get("hang_after", -1)
        schedule: List[int] = []
        if handler is None:
            rng = np.random.default_rng(options.get("seed", 0) + 7919 * copy_index + worker)
            base = options.get("latency_ms", 1.0) + options.get("per_sample_ms", 0.0) * batch
            jitter = options.get("jitter_ms", 0.0)
            draws = base + rng.normal(0.0, jitter, _SCHEDULE) if jitter else np.full(_SCHEDULE, base)
            schedule = (np.maximum(draws, 0.0) * 1e6).astype(np.int64).tolist()
        calls = [0]

        def infer(inputs: Any = None) -> None:
            i = calls[0]
            calls[0] = i + 1
            if i == fail_after:
                raise _failure(options, f"fake device: inference {i} failed (fail_on = \"infer\")")
            if i == hang_after:
                threading.Event().wait()  # a device call that never returns
            if handler is not None:
                spend = int(handler(batch, copy_index, worker, i) * 1e6)
            else:
                spend = schedule[i % _SCHEDULE]
            spend += state.extra_ns()
            if capacity is not None:
                with capacity:
                    _spend(spend, busy)
            else:
                _spend(spend, busy)

        return Lane(infer, infer_on=infer)


def _failure(options: Mapping[str, Any], message: str) -> BaseException:
    """The error a scripted failure raises: the fake device's own, or torch's out-of-memory
    error (torch.cuda.OutOfMemoryError; a RuntimeError saying so on torch 1.13)."""
    if options.get("fail_as") != "out_of_memory":
        return FakeDeviceError(message)
    import torch

    kind = getattr(torch.cuda, "OutOfMemoryError", None)
    text = f"CUDA out of memory ({message})"
    return kind(text) if kind is not None else RuntimeError(text)


def _spend(ns: int, busy: bool) -> None:
    if busy:
        until = perf_counter_ns() + ns
        while perf_counter_ns() < until:
            pass
    elif ns > 0:
        time.sleep(ns / 1e9)


class FakeBackend(Backend):
    name = "fake"
    compiles = True
    OPTIONS = {
        "latency_ms": Option(float, "time per inference", minimum=0),
        "per_sample_ms": Option(float, "more time per input of the batch", minimum=0),
        "jitter_ms": Option(float, "standard deviation of seeded normal jitter", minimum=0),
        "cold_ms": Option(float, "extra time of a copy's first inference", minimum=0),
        "decay_iterations": Option(int, "warm-up calls whose extra time decays", minimum=0),
        "decay_ms": Option(float, "extra time of the first decaying call", minimum=0),
        "fail_on": Option(str, "fail this step", choices=("compile", "load", "infer")),
        "fail_after": Option(int, "with fail_on = infer: inferences before the failure", minimum=0),
        "fail_as": Option(str, "fail as a device error, or as torch's out-of-memory error",
                          choices=("error", "out_of_memory")),
        "hang_after": Option(int, "this inference never returns", minimum=0),
        "seed": Option(int, "seed of the jitter"),
        "mode": Option(str, "busy: spin on the clock; sleep: release the GIL",
                       choices=("busy", "sleep")),
        "handler": Option(str, "module:attr of handler(batch, copy, worker, i) -> ms"),
        "capacity": Option(int, "inferences that can run at once in a process", minimum=1),
        "compile_ms": Option(float, "time the compile step takes", minimum=0),
        "load_ms": Option(float, "time each copy's load takes", minimum=0),
    }
    #: Every artifact compiled in this process, in order: tests count compiles with it.
    compiled: ClassVar[List[Artifact]] = []

    def __init__(self, options: Optional[Mapping[str, Any]] = None,
                 device: Optional[str] = None, handler: Optional[Handler] = None) -> None:
        super().__init__(options, device)
        if handler is None and "handler" in self.options:
            from ..models import load_callable

            handler = load_callable(self.options["handler"], "device option 'handler'")
        self.handler = handler
        capacity = self.options.get("capacity")
        self.capacity = threading.BoundedSemaphore(capacity) if capacity else None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        checked = super().check_options(options)
        if "fail_after" in checked and checked.get("fail_on") != "infer":
            raise UserError("device option 'fail_after': needs fail_on = \"infer\"")
        return checked

    @classmethod
    def process_env(cls, device: str, options: Mapping[str, Any], copy_index: int, copies: int
                    ) -> Dict[str, str]:
        # What NEURON_RT_VISIBLE_CORES is to a Neuron copy: proof that the seam works.
        return {"LATENCY_TUI_FAKE_COPY": f"{copy_index}/{copies}"}

    def facts(self) -> DeviceFacts:
        return DeviceFacts(device="fake", name="fake device",
                           timing="host clock; latencies are simulated",
                           details={k: v for k, v in self.options.items() if k != "handler"})

    def compile(self, source: Any, batch_size: int) -> Artifact:
        started = time.perf_counter()
        if self.options.get("fail_on") == "compile":
            raise _failure(self.options, "fake device: compile failed (fail_on = \"compile\")")
        _spend(int(self.options.get("compile_ms", 0.0) * 1e6), busy=False)
        artifact = Artifact(key=self.cache_key(source, batch_size), backend=self.name,
                            batch_size=batch_size, compile_s=time.perf_counter() - started,
                            details={"compiled_in_pid": os.getpid()})
        FakeBackend.compiled.append(artifact)
        return artifact

    def load(self, artifact: Artifact, source: Any, *, copy_index: int,
             threads: Optional[int]) -> PreparedModel:
        source.load()  # the model is loaded as on any device (its facts, its errors), never run
        _spend(int(self.options.get("load_ms", 0.0) * 1e6), busy=False)
        if self.options.get("fail_on") == "load":
            raise _failure(self.options, "fake device: load failed (fail_on = \"load\")")
        return FakePrepared(self, artifact.batch_size, copy_index)
