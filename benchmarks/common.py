"""What the three benchmarks share: run settings, the figure they report, and running a plan
through the engine's public API (a preset TOML -> ``build_plan`` -> ``Engine(plan, sink).run()``).

Kept free of torch and of the engine at import time: spawned bare processes import the
benchmark modules, and should pay only for what they use.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_FILE = Path(__file__).resolve().parent / "models.py"
WORKLOADS_FILE = Path(__file__).resolve().parent / "workloads.py"


@dataclass(frozen=True)
class Settings:
    """How long each benchmark runs; ``MODES`` has the presets of ``--quick`` and ``--smoke``."""

    # (a) harness overhead on a no-op model
    loop_reps: int = 31          # interleaved bare / timed_loop pairs
    loop_iterations: int = 50_000
    engine_reps: int = 5         # interleaved bare / full Engine pairs
    engine_s: float = 1.0
    # (b) MLP p50 against torch.utils.benchmark
    mlp_reps: int = 5
    mlp_engine_s: float = 2.0
    mlp_timer_s: float = 1.0
    # (c) process-copy scaling on a Python-bound model
    scaling_reps: int = 5
    scaling_s: float = 2.0
    # (d) the open-loop load generator's schedule error (``--only d``)
    dispatch_reps: int = 3
    dispatch_s: float = 3.0


MODES: Dict[str, Settings] = {
    "full": Settings(),
    "quick": Settings(loop_reps=11, loop_iterations=20_000, engine_reps=3, engine_s=0.5,
                      mlp_reps=3, mlp_engine_s=1.0, mlp_timer_s=0.5, scaling_reps=2, scaling_s=1.5,
                      dispatch_reps=2, dispatch_s=2.0),
    "smoke": Settings(loop_reps=3, loop_iterations=5_000, engine_reps=1, engine_s=0.2,
                      mlp_reps=1, mlp_engine_s=0.3, mlp_timer_s=0.2, scaling_reps=1, scaling_s=0.5,
                      dispatch_reps=1, dispatch_s=0.5),
}


@dataclass
class Figure:
    """One reported figure, its target and whether it was met."""

    key: str
    title: str
    value: float
    unit: str
    target: str
    passed: bool
    #: One line of what was measured, for the summary table.
    measured: str
    #: How it was measured (the benchmark function's docstring).
    method: str
    details: Dict[str, Any] = field(default_factory=dict)
    #: A caveat about this run's conditions (printed under the table), or "".
    note: str = ""

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "value": self.value, "unit": self.unit,
            "target": self.target, "passed": self.passed, "verdict": self.verdict,
            "measured": self.measured, "method": self.method, "note": self.note,
            "details": self.details,
        }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def clean_doc(doc: Optional[str]) -> str:
    import inspect

    return inspect.cleandoc(doc or "")


def quiet_sink(event: Any) -> None:
    """The engine's event sink for benchmarks: drops every event (nothing to draw)."""


def plan_from_toml(text: str, name: str, **overrides: Any) -> Any:
    """A run plan from preset TOML text, through the same parser and plan builder as the CLI."""
    from latency_tui.core.plan import Overrides, build_plan
    from latency_tui.core.presets import parse_preset

    preset = parse_preset(text, name=name, path=None, origin="file",
                          where=f"benchmark preset {name}")
    return build_plan(preset, Overrides(**overrides))


def run_one(plan: Any) -> Any:
    """Run a one-configuration plan with ``Engine(plan, sink).run()``; its finished result."""
    from latency_tui.core.engine import Engine

    results = Engine(plan, quiet_sink).run()
    if len(results) != 1:
        raise RuntimeError(f"{plan.name}: expected one configuration, got {len(results)}")
    result = results[0]
    if result.status != "finished" or not result.samples:
        raise RuntimeError(f"{plan.name}: configuration {result.status}: {result.error}")
    return result


def fmt_ns(ns: float) -> str:
    return f"{ns:.0f} ns" if abs(ns) < 10_000 else f"{ns / 1000:.1f} us"


def spread(values: List[float]) -> str:
    """``min..max`` of repetitions, for the details line."""
    return f"{min(values):.4g}..{max(values):.4g}" if values else ""


def cpu_lane(source: str, batch_size: int = 1, threads: int = 1) -> Any:
    """The exact callable the engine times for ``source`` on the CPU: the CPU backend's compile
    (the identity), its load for copy 0, and worker 0's lane."""
    from latency_tui.core.backends.cpu import CpuBackend
    from latency_tui.core.source import ModelSource
    from latency_tui.core.specs import InputSpec, ModelSpec

    backend = CpuBackend()
    model = ModelSource(ModelSpec(source), InputSpec())
    prepared = backend.load(backend.compile(model, batch_size), model, copy_index=0,
                            threads=threads)
    return prepared.lane(0).infer
