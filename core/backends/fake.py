"""A fake device for tests and demonstrations, as httpx's ``MockTransport`` is for transports.

It ignores the model and spends a scripted time per inference: ``latency_ms`` plus seeded
normal jitter (``jitter_ms``), ``cold_ms`` extra on the first call, a warm-up that decays over
``decay_iterations`` calls, and failures on demand (``fail_on = "prepare"`` or ``"infer"``,
``fail_after`` inferences). ``mode = "busy"`` spins on the clock (precise, holds the GIL);
``"sleep"`` sleeps (releases the GIL, so thread workers overlap like a real device).
"""

from __future__ import annotations

import time
from time import perf_counter_ns
from typing import Any, Callable, Optional

import numpy as np

from ..errors import UserError
from .base import Backend, DeviceFacts, PreparedModel

_OPTIONS = {
    "latency_ms": float, "jitter_ms": float, "cold_ms": float, "decay_iterations": int,
    "decay_ms": float, "fail_on": str, "fail_after": int, "seed": int, "mode": str,
}


class FakeDeviceError(RuntimeError):
    """What the fake device raises when told to fail."""


class FakePrepared(PreparedModel):
    synchronous = True

    def __init__(self, options: dict, copy_index: int) -> None:
        rng = np.random.default_rng(int(options.get("seed", 0)) + copy_index)
        base = float(options.get("latency_ms", 1.0))
        jitter = float(options.get("jitter_ms", 0.0))
        draws = np.maximum(base + rng.normal(0.0, jitter, 4096) if jitter else np.full(4096, base), 0)
        self._schedule_ns = (draws * 1e6).astype(np.int64).tolist()
        self._cold_ns = int(float(options.get("cold_ms", 0.0)) * 1e6)
        self._decay_left = int(options.get("decay_iterations", 0))
        self._decay_ns = int(float(options.get("decay_ms", base)) * 1e6)
        self._decay_total = max(self._decay_left, 1)
        self._fail_after = int(options["fail_after"]) if options.get("fail_on") == "infer" else -1
        self._busy = options.get("mode", "busy") == "busy"
        self._calls = 0

    def infer(self) -> Any:
        calls = self._calls
        self._calls = calls + 1
        if calls == self._fail_after:
            raise FakeDeviceError(f"fake device: inference {calls} failed (fail_on = \"infer\")")
        spend = self._schedule_ns[calls & 4095]
        if calls == 0:
            spend += self._cold_ns
        if self._decay_left > 0:
            spend += self._decay_ns * self._decay_left // self._decay_total
            self._decay_left -= 1
        if self._busy:
            until = perf_counter_ns() + spend
            while perf_counter_ns() < until:
                pass
        else:
            time.sleep(spend / 1e9)
        return None

    def infer_on(self, inputs: Any) -> Any:
        return self.infer()


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, options: Optional[dict] = None) -> None:
        super().__init__(options)
        for key, value in self.options.items():
            kind = _OPTIONS.get(key)
            if kind is None:
                raise UserError(f"device option {key!r}: unknown for the fake device "
                                f"(known: {', '.join(_OPTIONS)})")
            try:
                kind(value)
            except (TypeError, ValueError):
                raise UserError(f"device option {key!r}: {value!r} is not a {kind.__name__}") from None
        if self.options.get("mode", "busy") not in ("busy", "sleep"):
            raise UserError(f"device option 'mode': {self.options['mode']!r} is not busy or sleep")

    def facts(self) -> DeviceFacts:
        return DeviceFacts(device="fake", name="fake device",
                           timing="host clock; latencies are simulated", details=dict(self.options))

    def prepare(
        self,
        model: Callable[..., Any],
        inputs: Any,
        *,
        batch_size: int,
        copy_index: int,
        threads: Optional[int],
    ) -> PreparedModel:
        if self.options.get("fail_on") == "prepare":
            raise FakeDeviceError("fake device: prepare failed (fail_on = \"prepare\")")
        return FakePrepared(self.options, copy_index)
