"""The CPU backend: PyTorch (or any Python callable) on the host's cores.

Inference on the CPU is synchronous, so the host clock around the call is the latency and a
lane has no ``wait``. Each copy may use ``threads`` intra-op threads: in a copy's own process
that is exact; with thread copies torch's thread count is process-wide, so every copy gets the
same number. The compile step is the identity: each copy loads the model from its source.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any, Callable, ContextManager, Optional

from ..host import cpu_model
from .base import Artifact, Backend, DeviceFacts, Lane, PreparedModel


def call_with(model: Callable[..., Any], inputs: Any) -> Callable[[], Any]:
    """A zero-argument callable running ``model`` on ``inputs`` (tuple, dict or one object)."""
    if isinstance(inputs, dict):
        return functools.partial(model, **inputs)
    if isinstance(inputs, (tuple, list)):
        return functools.partial(model, *inputs)
    return functools.partial(model, inputs)


def inference_context() -> ContextManager[Any]:
    """``torch.inference_mode`` when torch is loaded (a plain callable needs nothing)."""
    torch = sys.modules.get("torch")
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()


class CpuPrepared(PreparedModel):
    def __init__(self, model: Callable[..., Any], inputs: Any) -> None:
        self.model = model
        self.inputs = inputs

    def lane(self, worker: int) -> Lane:
        # A partial, not a method: the timing loop then calls it directly, one Python frame
        # fewer per sample.
        return Lane(call_with(self.model, self.inputs), infer_on=self.infer_on,
                    context=inference_context)

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
        return CpuPrepared(module, source.batch(artifact.batch_size))


def set_threads(threads: Optional[int]) -> None:
    """torch's intra-op thread count (process-wide), when torch is loaded."""
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
