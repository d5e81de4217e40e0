"""A scripted, seeded stand-in for the engine and the presets, for tests, snapshots and demos.

``FakeEngine`` has the real engine's shape (``FakeEngine(plan, sink)``, ``run()``, ``stop()``)
and emits the same event stream, with latencies drawn from a seeded log-normal whose median
grows with the batch size and the number of copies. With ``pace_s=0`` it emits everything at
once, so a snapshot sees the same screen every time; ``pause_at`` holds it mid-configuration so
that a test can look at a run in progress. ``FakeCatalog`` offers fixed presets and builds plans
without reading any file.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from latency_tui.core.errors import UserError
from latency_tui.core.events import (
    ConfigFinished,
    ConfigStarted,
    ModelLoaded,
    PhaseChanged,
    Progress,
    RunFinished,
    RunStarted,
    Samples,
    Sink,
    WarmupFinished,
)
from latency_tui.core.measurement import ConfigResult, Throughput
from latency_tui.core.plan import parse_int_list
from latency_tui.core.specs import (
    InputSpec,
    ModelSpec,
    RunConfig,
    RunPlan,
    StopRule,
    TensorSpec,
    WarmupPolicy,
)

from .livestats import summarize_ns

#: Facts a host reports, fixed so that snapshots do not show this machine.
FAKE_HOST: Dict[str, Any] = {
    "hostname": "fake-host",
    "platform": "Linux",
    "logical_cpus": 8,
    "load_average": [0.1, 0.1, 0.1],
}


class FakeEngine:
    """Emits a deterministic run: loading, warm-up, ``chunks`` Samples per configuration."""

    def __init__(
        self,
        plan: RunPlan,
        sink: Sink,
        *,
        seed: int = 0,
        chunks: int = 10,
        chunk_size: int = 400,
        pace_s: float = 0.0,
        fail_batch: Optional[int] = None,
        unstable_index: Optional[int] = None,
        pause_at: Optional[Tuple[int, int]] = None,
        pause_timeout_s: float = 30.0,
    ) -> None:
        self.plan = plan
        self.sink = sink
        self.seed = seed
        self.chunks = chunks
        self.chunk_size = chunk_size
        self.pace_s = pace_s
        self.fail_batch = fail_batch
        self.unstable_index = unstable_index
        self.pause_at = pause_at
        self.pause_timeout_s = pause_timeout_s
        #: Set when the run reaches ``pause_at``; ``resume`` lets it go on.
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.finished = threading.Event()
        self.stop_calls = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        self.stop_calls += 1
        self._stop.set()
        self.resume.set()

    def median_ms(self, config: RunConfig) -> float:
        base = float(config.device_options.get("latency_ms", 2.0))
        return base * config.batch_size ** 0.7 * (1 + 0.15 * (config.copies - 1))

    def run(self) -> Tuple[ConfigResult, ...]:
        try:
            return self._run()
        finally:
            self.finished.set()

    def _run(self) -> Tuple[ConfigResult, ...]:
        emit = self.sink
        rng = np.random.default_rng(self.seed)
        total = len(self.plan.configs)
        duration = self.plan.stop.duration_s or 10.0
        results: List[ConfigResult] = []
        emit(RunStarted(self.plan, dict(FAKE_HOST), started_at=0.0))
        for index, config in enumerate(self.plan.configs):
            if self._stop.is_set():
                break
            emit(ConfigStarted(index, total, config))
            emit(PhaseChanged(index, "loading", self.plan.model.source))
            if index == 0:
                emit(ModelLoaded(index, {"name": "mlp", "parameters": 1_234_567, "size_mb": 4.9}))
            emit(PhaseChanged(index, "preparing"))
            emit(PhaseChanged(index, "warmup"))
            median = self.median_ms(config)
            stable = index != self.unstable_index
            emit(WarmupFinished(index, median * 30, 40 if stable else 5000, stable, 0.4))
            if config.batch_size == self.fail_batch:
                error = f"RuntimeError: out of memory at batch {config.batch_size} (scripted)"
                result = ConfigResult(config, "failed", error=error)
                results.append(result)
                emit(ConfigFinished(index, result))
                continue
            emit(PhaseChanged(index, "measuring"))
            kept: List[np.ndarray] = []
            count = 0
            elapsed = 0.0
            cancelled = False
            for chunk in range(self.chunks):
                if self._stop.is_set():
                    cancelled = True
                    break
                size = self.chunk_size * config.copies * config.workers_per_copy
                values = rng.lognormal(np.log(median), 0.12, size) * 1e6
                latencies = values.astype(np.int64)
                kept.append(latencies)
                count += size
                elapsed = duration * (chunk + 1) / self.chunks
                emit(Samples(index, latencies, elapsed))
                emit(Progress(index, elapsed, count, elapsed / duration))
                if self.pause_at == (index, chunk):
                    self.paused.set()
                    self.resume.wait(self.pause_timeout_s)
                if self.pace_s:
                    time.sleep(self.pace_s)
            emit(PhaseChanged(index, "stopping"))
            samples = np.concatenate(kept) if kept else np.empty(0, np.int64)
            result = ConfigResult(
                config,
                "cancelled" if cancelled else "finished",
                samples=int(samples.size),
                duration_s=elapsed,
                first_inference_ms=median * 30,
                warmup_iterations=40 if stable else 5000,
                warmup_stable=stable,
                latency=summarize_ns(samples),
                throughput=(
                    Throughput(count / elapsed, count * config.batch_size / elapsed)
                    if elapsed else None
                ),
                warnings=() if stable else ("warm-up never stabilised",),
            )
            results.append(result)
            emit(ConfigFinished(index, result))
            if cancelled:
                break
        emit(RunFinished(tuple(results), cancelled=self._stop.is_set()))
        return tuple(results)


class FakeEngineFactory:
    """``engine_factory`` for the app: makes FakeEngines with fixed options, keeps them."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.engines: List[FakeEngine] = []

    def __call__(self, plan: RunPlan, sink: Sink) -> FakeEngine:
        engine = FakeEngine(plan, sink, **self.options)
        self.engines.append(engine)
        return engine

    @property
    def last(self) -> FakeEngine:
        return self.engines[-1]


@dataclass(frozen=True)
class FakePreset:
    name: str
    description: str
    path: Optional[Path] = None
    data: Dict[str, Any] = field(default_factory=dict, hash=False)


FAKE_PRESETS: Tuple[FakePreset, ...] = (
    FakePreset(
        "cpu-mlp",
        "3-layer MLP on the CPU, batch 1: the quick check",
        data={"model": "builtin:mlp", "device": "cpu", "batch_sizes": (1,), "copies": (1,),
              "workers": (1,), "duration_s": 10.0},
    ),
    FakePreset(
        "fake-sweep",
        "fake device, batch sizes 1 to 8",
        data={"model": "builtin:mlp", "device": "fake", "batch_sizes": (1, 2, 4, 8),
              "copies": (1,), "workers": (1,), "duration_s": 5.0},
    ),
    FakePreset(
        "cpu-bert",
        "BERT-style encoder on the CPU, 2 copies x 2 workers",
        data={"model": "builtin:bert", "device": "cpu", "batch_sizes": (8,), "copies": (2,),
              "workers": (2,), "duration_s": 60.0},
    ),
)


class FakeCatalog:
    """Fixed presets and a plan builder that reads no file."""

    def __init__(self, presets: Sequence[FakePreset] = FAKE_PRESETS) -> None:
        self._presets = list(presets)

    def presets(self) -> List[FakePreset]:
        return list(self._presets)

    def load(self, name_or_path: str) -> FakePreset:
        for preset in self._presets:
            if preset.name == name_or_path:
                return preset
        raise UserError(f"preset {name_or_path!r} not found (try one of: "
                        f"{', '.join(p.name for p in self._presets)})")

    def parse_ints(self, text: str, what: str) -> Tuple[int, ...]:
        return parse_int_list(text, what)

    def build(self, preset: FakePreset, overrides: Dict[str, Any]) -> RunPlan:
        data = dict(preset.data)
        data.update({k: v for k, v in overrides.items() if v is not None})
        if data["device"] not in ("cpu", "fake", "cuda", "neuron"):
            raise UserError(f"device {data['device']!r}: not one of cpu, cuda, neuron, fake")
        if data["duration_s"] is not None and float(data["duration_s"]) <= 0:
            raise UserError("duration: must be more than 0 seconds")
        base = RunConfig(device=data["device"], device_options={"latency_ms": 2.0})
        configs = tuple(
            replace(base, batch_size=b, copies=c, workers_per_copy=w)
            for b, c, w in itertools.product(
                data["batch_sizes"], data["copies"], data["workers"]
            )
        )
        warmup = WarmupPolicy(max_s=float(data.get("warmup_max_s") or 30.0))
        return RunPlan(
            name=preset.name,
            model=ModelSpec(str(data["model"])),
            inputs=InputSpec(tensors=(TensorSpec("x", (16,)),)),
            configs=configs,
            stop=StopRule(duration_s=float(data["duration_s"])),
            warmup=warmup,
            preset={"name": preset.name, **{k: v for k, v in data.items()}},
        )

