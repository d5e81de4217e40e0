"""The CPU backend: PyTorch (or any Python callable) on the host's cores.

Inference on the CPU is synchronous, so the host clock around the call is the latency. Each
copy may use ``threads`` intra-op threads: in a copy's own process that is exact; with thread
copies torch's thread count is process-wide, so every copy gets the same number.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any, Callable, ContextManager, Optional

from ..errors import UserError
from ..host import _cpu_model
from .base import Backend, DeviceFacts, PreparedModel


def call_with(model: Callable[..., Any], inputs: Any) -> Callable[[], Any]:
    """A zero-argument callable running ``model`` on ``inputs`` (tuple, dict or one tensor)."""
    if isinstance(inputs, dict):
        return functools.partial(model, **inputs)
    if isinstance(inputs, (tuple, list)):
        return functools.partial(model, *inputs)
    return functools.partial(model, inputs)


class CpuPrepared(PreparedModel):
    synchronous = True

    def __init__(self, model: Callable[..., Any], inputs: Any) -> None:
        self.model = model
        self.inputs = inputs
        # An instance attribute shadows the method: the timing loop then calls the partial
        # directly, one Python frame fewer per sample.
        self.infer = call_with(model, inputs)  # type: ignore[method-assign]

    def infer(self) -> Any:  # pragma: no cover - shadowed in __init__
        return self.model(*self.inputs)

    def infer_on(self, inputs: Any) -> Any:
        return call_with(self.model, inputs)()

    def thread_context(self) -> ContextManager[Any]:
        torch = sys.modules.get("torch")
        if torch is None:  # a plain Python callable: nothing to switch off
            return contextlib.nullcontext()
        return torch.inference_mode()


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self, options: Optional[dict] = None) -> None:
        super().__init__(options)
        if self.options:
            key = sorted(self.options)[0]
            raise UserError(f"device option {key!r}: the cpu device takes no [device] options "
                            f"(threads per copy are run.threads_per_copy)")

    def facts(self) -> DeviceFacts:
        details = {"logical_cpus": os.cpu_count()}
        torch = sys.modules.get("torch")
        if torch is not None:
            details["torch_threads"] = torch.get_num_threads()
        return DeviceFacts(
            device="cpu",
            name=_cpu_model(),
            timing="host clock (perf_counter_ns); CPU inference is synchronous",
            details=details,
        )

    def configure_process(self, copy_index: int, threads: Optional[int]) -> None:
        _set_threads(threads)

    def prepare(
        self,
        model: Callable[..., Any],
        inputs: Any,
        *,
        batch_size: int,
        copy_index: int,
        threads: Optional[int],
    ) -> PreparedModel:
        _set_threads(threads)
        return CpuPrepared(model, inputs)


def _set_threads(threads: Optional[int]) -> None:
    torch = sys.modules.get("torch")
    if threads and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
