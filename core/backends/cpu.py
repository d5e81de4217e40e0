"""The CPU backend: PyTorch (or any Python callable) on the host's cores.

Inference on the CPU is synchronous, so the host clock around the call is the latency and a
lane has no ``wait``. Each copy may use ``threads`` intra-op threads: in a copy's own process
that is exact; with thread copies torch's thread count is process-wide, so every copy gets the
same number. The compile step is the identity: each copy loads the model from its source.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
from typing import Any, Callable, ContextManager, Mapping, Optional, Sequence

from ..host import cpu_model
from .base import Artifact, Backend, DeviceFacts, Lane, PreparedModel


def call_with(model: Callable[..., Any], inputs: Any) -> Callable[[], Any]:
    """A zero-argument callable running ``model`` on ``inputs``: the calling convention, as
    NeuronPerf's: a tuple (or list) is spread as positional arguments, a mapping (a dict, a
    tokenizer's BatchEncoding) as keywords, anything else is the one argument."""
    if isinstance(inputs, Mapping):
        return functools.partial(model, **inputs)
    if isinstance(inputs, (tuple, list)):
        return functools.partial(model, *inputs)
    return functools.partial(model, inputs)


def spread(step: Callable[..., Any]) -> Callable[[Any], Any]:
    """``step`` called on inputs by ``call_with``'s convention (a preprocess step takes the
    inputs as the model would)."""
    def call(inputs: Any) -> Any:
        if isinstance(inputs, Mapping):
            return step(**inputs)
        if isinstance(inputs, (tuple, list)):
            return step(*inputs)
        return step(inputs)
    return call


def cycling(calls: Sequence[Callable[[], Any]]) -> Callable[[], Any]:
    """One call when there is one; else a call that runs the next of ``calls`` each time
    (a dataset's batches, all placed before timing), without allocating per call."""
    if len(calls) == 1:
        return calls[0]
    turn = itertools.cycle(calls).__next__

    def next_call() -> Any:
        return turn()()
    return next_call


def inference_context() -> ContextManager[Any]:
    """``torch.inference_mode`` when torch is loaded (a plain callable needs nothing)."""
    torch = sys.modules.get("torch")
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()


class CpuPrepared(PreparedModel):
    """``inputs`` is one call's inputs, or a list of distinct ones (a dataset's batches)
    cycled per inference."""

    def __init__(self, model: Callable[..., Any], inputs: Any) -> None:
        self.model = model
        self.batches = inputs if isinstance(inputs, list) else [inputs]
        self.inputs = self.batches[0]

    def lane(self, worker: int) -> Lane:
        # A partial, not a method: the timing loop then calls it directly, one Python frame
        # fewer per sample.
        calls = [call_with(self.model, batch) for batch in self.batches]
        return Lane(cycling(calls), infer_on=self.infer_on, context=inference_context)

    def infer_on(self, inputs: Any) -> Any:
        return call_with(self.model, inputs)()


class CpuBackend(Backend):
    name = "cpu"
    OPTIONS_HINT = "threads per copy are run.threads_per_copy"

    def facts(self) -> DeviceFacts:
        details = {"logical_cpus": os.cpu_count()}
        torch = sys.modules.get("torch")
        if torch is not None:
            details["torch_threads"] = torch.get_num_threads()
        return DeviceFacts(
            device="cpu",
            name=cpu_model(),
            timing="host clock (perf_counter_ns); CPU inference is synchronous",
            details=details,
        )

    def configure_process(self, copy_index: int, threads: Optional[int]) -> None:
        set_threads(threads)

    def load(self, artifact: Artifact, source: Any, *, copy_index: int,
             threads: Optional[int]) -> PreparedModel:
        module = source.module_for_copy(copy_index)
        set_threads(threads)
        return CpuPrepared(module, source.batches(artifact.batch_size))


def set_threads(threads: Optional[int]) -> None:
    """torch's intra-op thread count (process-wide), when torch is loaded."""
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
