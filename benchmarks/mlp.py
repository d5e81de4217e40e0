"""(b) The built-in MLP's p50 as the engine measures it, against torch.utils.benchmark's
median on the same model object and inputs."""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any, List, Tuple

from .common import Figure, Settings, clean_doc, median, plan_from_toml, run_one

TARGET = 0.03
#: torch.utils.benchmark's own noise threshold: above it, its median is itself suspect.
NOISY_IQR = 0.10

MLP_PRESET = """
name = "bench-mlp"
[model]
source = "benchmarks.models:builtin_mlp"
[run]
device = "cpu"
batch_sizes = [1]
copies = [1]
workers = [1]
copy_mode = "thread"
threads_per_copy = 1
duration_s = {duration}
[warmup]
min_iterations = 200
max_s = 2.0
"""


def timer_median_us(model: Any, inputs: Any, min_run_time: float) -> Tuple[float, float]:
    """torch.utils.benchmark's median (us) of ``model(*inputs)``, 1 thread, inference mode,
    and its IQR relative to the median."""
    import torch
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="model(*inputs)", globals={"model": model, "inputs": inputs},
                  num_threads=1, label="builtin:mlp", description="batch 1")
    with torch.inference_mode():
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median * 1e6, measurement.iqr / measurement.median


def bare_p50_us(model: Any, inputs: Any, seconds: float) -> float:
    """p50 (us) of a bare timed loop over ``model(*inputs)``, 1 thread, inference mode."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    now = perf_counter_ns
    samples: List[int] = []
    append = samples.append
    deadline = now() + int(seconds * 1e9)
    with torch.inference_mode():
        while True:
            t0 = now()
            model(*inputs)
            t1 = now()
            append(t1 - t0)
            if t1 >= deadline:
                break
    return float(np.median(samples)) / 1e3


def measure(settings: Settings) -> Figure:
    """The builtin:mlp p50 measured by the engine against torch.utils.benchmark's median.

    The model is ``builtin:mlp`` (the tabular MLP, 16-64-32-1) at batch size 1, loaded once
    by the engine's own ``load_model`` and ``build_inputs`` and shared through the factory
    ``benchmarks.models:builtin_mlp``, so the engine and the reference time the very same
    module object and input tensors. The engine runs it through ``Engine(plan, sink).run()``:
    1 copy x 1 worker, thread copy, ``threads_per_copy = 1`` (``torch.set_num_threads(1)``),
    inference mode, warm-up until stable, ``mlp_engine_s`` seconds; its figure is the
    session's p50. The reference is ``torch.utils.benchmark.Timer("model(*inputs)",
    num_threads=1).blocked_autorange(min_run_time=mlp_timer_s).median`` inside
    ``torch.inference_mode()`` (as the engine's CPU backend runs). Repetitions interleave
    (engine first, then reference first...), and the figure is |median engine p50 / median
    Timer median - 1| (target at most 3 %). A bare timed loop's p50 on the same call is
    reported beside them: the Timer's median is a median of block means, which a skewed
    distribution pushes above the per-sample median.
    """
    import torch

    from .models import shared_mlp

    model, inputs = shared_mlp()
    plan = plan_from_toml(MLP_PRESET.format(duration=settings.mlp_engine_s), "bench-mlp")
    threads_before = torch.get_num_threads()
    engine_us: List[float] = []
    timer_us: List[float] = []
    timer_rel_iqr: List[float] = []
    bare_us: List[float] = []
    samples: List[int] = []
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():  # warm the reference's path too
            for _ in range(200):
                model(*inputs)
        for rep in range(settings.mlp_reps):
            for which in (("engine", "timer", "bare") if rep % 2 == 0
                          else ("timer", "engine", "bare")):
                if which == "engine":
                    result = run_one(plan)
                    if result.details.get("threads_per_copy") != 1:
                        raise RuntimeError("engine did not run with 1 thread per copy")
                    engine_us.append(result.latency.percentiles["p50"] * 1e3)
                    samples.append(result.samples)
                elif which == "timer":
                    median_us, rel_iqr = timer_median_us(model, inputs, settings.mlp_timer_s)
                    timer_us.append(median_us)
                    timer_rel_iqr.append(rel_iqr)
                else:
                    bare_us.append(bare_p50_us(model, inputs, settings.mlp_timer_s))
    finally:
        torch.set_num_threads(threads_before)
    engine, timer, bare = median(engine_us), median(timer_us), median(bare_us)
    ratio = engine / timer - 1.0
    return Figure(
        key="b",
        title="(b) builtin:mlp p50 (batch 1, 1 thread): engine vs torch.utils.benchmark",
        value=ratio * 100.0, unit="%",
        target=f"within {TARGET * 100:.0f} %",
        passed=abs(ratio) <= TARGET,
        measured=(f"engine p50 {engine:.1f} us vs Timer median {timer:.1f} us: "
                  f"{ratio * 100:+.1f} % (bare timed loop p50 {bare:.1f} us, engine "
                  f"{(engine / bare - 1) * 100:+.1f} %)"),
        method=clean_doc(measure.__doc__),
        note=(f"torch.utils.benchmark saw IQR/median up to {max(timer_rel_iqr) * 100:.0f} % "
              f"(noisy machine); the bare-loop p50 is the steadier reference"
              if max(timer_rel_iqr) > NOISY_IQR else ""),
        details={
            "timer_iqr_over_median": timer_rel_iqr,
            "reps": settings.mlp_reps, "engine_s": settings.mlp_engine_s,
            "timer_min_run_time_s": settings.mlp_timer_s,
            "engine_p50_us": engine_us, "timer_median_us": timer_us, "bare_p50_us": bare_us,
            "engine_samples": samples, "engine_vs_bare_pct": (engine / bare - 1) * 100,
        },
    )


def run(settings: Settings) -> List[Figure]:
    return [measure(settings)]
