"""A stand-in accelerator for the CUDA backend on a machine with no GPU: the same five members
as ``core.backends.accel.Accel``, on the CPU, counting what the backend asks of it, so that the
per-worker lanes, the events and the device clock are exercised through the real engine."""

from __future__ import annotations

import contextlib
import threading
from time import perf_counter_ns
from typing import Any, Dict, List


class FakeStream:
    def __init__(self, device: Any) -> None:
        self.device = device


class FakeEvent:
    def __init__(self, accel: "FakeAccel") -> None:
        self.accel = accel
        self.at = 0
        self.stream = None

    def record(self, stream: Any = None) -> None:
        self.at = perf_counter_ns()
        self.stream = stream

    def synchronize(self) -> None:
        self.accel.count("event.synchronize")

    def elapsed_time(self, end: "FakeEvent") -> float:
        """In ms, as torch's: a device that ran 90 % of the host's span."""
        return (end.at - self.at) * 0.9 / 1e6


class FakeAccel:
    generic = True

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.calls: Dict[str, int] = {}
        self.streams: List[FakeStream] = []
        self.current: Dict[int, Any] = {}
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    def device(self, index: int) -> Any:
        return self.torch.device("cpu")

    def stream(self, device: Any) -> FakeStream:
        stream = FakeStream(device)
        with self._lock:
            self.streams.append(stream)
        return stream

    def event(self, device: Any) -> FakeEvent:
        return FakeEvent(self)

    @contextlib.contextmanager
    def on_stream(self, stream: FakeStream):
        self.current[threading.get_ident()] = stream
        yield

    def synchronize(self, device: Any) -> None:
        self.count("device.synchronize")

    def reset_peak(self, device: Any) -> None:
        self.count("reset_peak")

    def memory(self, device: Any) -> Dict[str, float]:
        return {"peak_allocated_mb": 12.5, "peak_reserved_mb": 20.0}

    def empty_cache(self) -> None:
        self.count("empty_cache")
