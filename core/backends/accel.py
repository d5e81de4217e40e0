"""Streams, events and memory figures of a PyTorch accelerator, through one small object.

Where the installed torch has the device-generic API (``torch.Stream``, ``torch.Event``,
``torch.accelerator``: torch 2.6 and later) it is used, so that the same timing path serves
CUDA today and other PyTorch accelerators (the native ``neuron`` device) later; on torch 1.13,
the inf1 stack, ``torch.cuda``'s own classes do the same work. Tests hand the CUDA backend a
stand-in with the same five members.
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict


class Accel:
    """What a backend needs of an accelerator: a stream, a timing event, a stream context for a
    worker thread, a device-wide synchronize, and memory figures."""

    def __init__(self, torch: Any, kind: str = "cuda") -> None:
        self.torch = torch
        self.kind = kind
        self.generic = all(hasattr(torch, name) for name in ("Stream", "Event", "accelerator"))
        if kind != "cuda" and not self.generic:
            raise RuntimeError(f"the {kind} device needs torch's device-generic API (torch 2.6+)")

    def device(self, index: int) -> Any:
        return self.torch.device(self.kind, index)

    def stream(self, device: Any) -> Any:
        if self.generic:
            return self.torch.Stream(device=device)
        return self.torch.cuda.Stream(device=device)

    def event(self, device: Any) -> Any:
        if self.generic:
            return self.torch.Event(device=device, enable_timing=True)
        return self.torch.cuda.Event(enable_timing=True)

    def on_stream(self, stream: Any) -> ContextManager[Any]:
        """Make ``stream`` the current thread's stream: what the model issues goes there."""
        if self.generic and hasattr(type(stream), "__enter__"):
            return stream  # torch.Stream is its own context manager from torch 2.7
        if self.kind == "cuda":
            return self.torch.cuda.stream(stream)  # takes a torch.Stream too (torch 2.6)
        return _current_stream(self.torch, stream)

    def synchronize(self, device: Any) -> None:
        if self.generic:
            self.torch.accelerator.synchronize(device)
        else:
            self.torch.cuda.synchronize(device)

    def _memory(self) -> Any:
        return self.torch.accelerator if self.generic and hasattr(
            self.torch.accelerator, "max_memory_allocated") else self.torch.cuda

    def reset_peak(self, device: Any) -> None:
        self._memory().reset_peak_memory_stats(device)

    def memory(self, device: Any) -> Dict[str, float]:
        """Peak allocated and reserved since the last reset, and the device's used and total,
        in MB (1e6 bytes); a figure the device cannot give is left out."""
        memory = self._memory()
        out: Dict[str, float] = {}
        with contextlib.suppress(Exception):
            out["peak_allocated_mb"] = memory.max_memory_allocated(device) / 1e6
            out["peak_reserved_mb"] = memory.max_memory_reserved(device) / 1e6
        with contextlib.suppress(Exception):
            free, total = (self.torch.cuda.mem_get_info(device) if self.kind == "cuda" else
                           self.torch.accelerator.get_memory_info(device))
            out["device_used_mb"] = (total - free) / 1e6
            out["device_total_mb"] = total / 1e6
        return out

    def empty_cache(self) -> None:
        with contextlib.suppress(Exception):
            (self._memory() if self.generic else self.torch.cuda).empty_cache()


@contextlib.contextmanager
def _current_stream(torch: Any, stream: Any) -> Any:
    """``stream`` as the current stream of its device, then the one before it (torch 2.6's
    torch.Stream is no context manager)."""
    previous = torch.accelerator.current_stream(stream.device)
    torch.accelerator.set_stream(stream)
    try:
        yield stream
    finally:
        torch.accelerator.set_stream(previous)
