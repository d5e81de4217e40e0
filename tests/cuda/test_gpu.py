"""Checks that need an NVIDIA GPU (marked ``cuda``; skipped elsewhere). Run them all with
``python -m benchmarks.gpu_check`` on a GPU host; its output goes into docs/gpu-validation.md.

They prove on hardware what the CPU-side tests can only simulate: that the device time of a
kernel of known duration reads true while a naive host timer does not; that the harness adds
nothing measurable to the MLP and BERT presets against a bare event-timed loop; that two
workers on one GPU do not wait for each other; that CUDA graphs help a launch-bound model; that
running out of memory fails one configuration and not the next; that the NVML monitor sees the
work; and that the cuda-bert preset runs end to end.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]

from helpers import fake_plan  # noqa: E402
from latency_tui.core.engine import Engine  # noqa: E402

MODELS = Path(__file__).parent / "gpu_models.py"


def report(name, **figures):
    """A check's figures, for the validation report that benchmarks/gpu_check.py collects from
    the output. On a line of its own: under ``pytest -v -s`` the test id is printed without a
    newline, and the line must start with ``GPU-CHECK``."""
    print(f"\nGPU-CHECK {name}: {json.dumps(figures)}", flush=True)


def sleep_times_ms(cycles, runs):
    """Device time of ``runs`` single ``torch.cuda._sleep(cycles)`` kernels, each between two
    CUDA events, each waited for before the next."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(runs):
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def calibrate_cycles(target_ms=1.0, runs=50):
    """Cycles of ``torch.cuda._sleep`` that take about ``target_ms`` on this GPU now.

    ``_sleep`` spins a number of SM clock cycles, so its duration follows the clock, which is low
    on an idle GPU and rises under load; the first launches also pay for loading the kernel's
    module. So: a second of warm-up first, then the median of ``runs`` event-timed kernels per
    step. The checks still compare the engine against a bare loop timed in the same test, not
    against ``target_ms``: the clock may drift between calibration and measuring."""
    deadline = time.perf_counter() + 1.0
    while time.perf_counter() < deadline:
        sleep_times_ms(1_000_000, 10)
    cycles = 1_000_000
    for _ in range(3):
        cycles = int(cycles * target_ms / statistics.median(sleep_times_ms(cycles, runs)))
    return cycles


def cuda_plan(model, **run):
    plan = fake_plan(model=model, device_name="cpu", duration_s=run.pop("duration_s", 3.0),
                     warmup={"min_iterations": 20, "max_iterations": 500, "window": 10,
                             "max_s": 10}, **run)
    configs = tuple(c.__class__(**{**c.__dict__, "device": "cuda"}) for c in plan.configs)
    return plan.__class__(**{**plan.__dict__, "configs": configs})


def with_options(plan, **options):
    configs = tuple(c.__class__(**{**c.__dict__, "device_options": options}) for c in plan.configs)
    return plan.__class__(**{**plan.__dict__, "configs": configs})


def test_a_kernel_of_known_duration_reads_true_on_the_device_clock(monkeypatch):
    """The engine's device p50 of a ``_sleep`` kernel calibrated to about 1 ms reads within 1 %
    of the same kernel's event-timed p50 in a bare loop run right after it (same clock state);
    a naive host timer around the launch, shown beside it, reads the launch instead."""
    cycles = calibrate_cycles(1.0)
    monkeypatch.setenv("LATENCY_TUI_SLEEP_CYCLES", str(cycles))
    (result,) = Engine(cuda_plan(f"{MODELS}:sleeper"), lambda e: None).run()
    assert result.status == "finished", result.error
    bare_p50 = statistics.median(sleep_times_ms(cycles, 200))
    # What a naive benchmark does: a host timer around the launch, no synchronize.
    naive = []
    for _ in range(200):
        t0 = time.perf_counter()
        torch.cuda._sleep(cycles)
        naive.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize()
    report("known kernel", calibrated_ms=1.0, cycles=cycles,
           device_p50_ms=result.device_latency["p50"], bare_event_p50_ms=bare_p50,
           host_p50_ms=result.latency["p50"], naive_unsynchronised_p50_ms=statistics.median(naive))
    assert result.device_latency["p50"] == pytest.approx(bare_p50, rel=0.01)
    assert statistics.median(naive) < 0.5  # the naive timer times the launch


@pytest.mark.parametrize("preset", ["cuda-mlp", "cuda-bert"])
def test_the_harness_matches_a_bare_event_timed_loop(preset):
    pytest.importorskip("transformers") if preset == "cuda-bert" else None
    from latency_tui.core.api import Overrides, build_plan, load_preset

    plan = build_plan(load_preset(preset), Overrides(batch_sizes=(1,), workers=(1,),
                                                     duration_s=3.0))
    plan = with_options(plan, **{**plan.configs[0].device_options, "compile": "eager"})
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "finished", result.error
    from latency_tui.core.models import load_model
    from latency_tui.core.inputs import build_inputs

    loaded = load_model(plan.model)
    module = loaded.module.cuda().eval()
    inputs = build_inputs(loaded, plan.inputs, 1)
    inputs = {k: v.cuda() for k, v in inputs.items()} if isinstance(inputs, dict) else \
        tuple(v.cuda() for v in inputs)
    precision = plan.configs[0].device_options.get("precision", "fp32")
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    bare = []
    with torch.inference_mode(), autocast:
        for i in range(2000):
            start.record()
            module(**inputs) if isinstance(inputs, dict) else module(*inputs)
            end.record()
            end.synchronize()
            if i >= 200:
                bare.append(start.elapsed_time(end))
    report(f"harness vs bare loop, {preset}", engine_device_p50_ms=result.device_latency["p50"],
           bare_event_p50_ms=statistics.median(bare))
    assert result.device_latency["p50"] == pytest.approx(statistics.median(bare), rel=0.02)


def test_two_workers_on_one_gpu_do_not_wait_for_each_other(monkeypatch):
    cycles = calibrate_cycles(1.0)
    monkeypatch.setenv("LATENCY_TUI_SLEEP_CYCLES", str(cycles))
    one, two = (Engine(cuda_plan(f"{MODELS}:sleeper", workers=(w,)), lambda e: None).run()[0]
                for w in (1, 2))
    report("two workers, separate streams", one_worker_device_p50_ms=one.device_latency["p50"],
           two_workers_device_p50_ms=two.device_latency["p50"],
           throughput_ratio=two.throughput.inferences_per_s / one.throughput.inferences_per_s)
    assert two.device_latency["p50"] == pytest.approx(one.device_latency["p50"], rel=0.1)
    assert two.throughput.inferences_per_s > 1.6 * one.throughput.inferences_per_s


def test_cuda_graphs_beat_eager_on_the_launch_bound_mlp():
    plan = cuda_plan("builtin:mlp", duration_s=3.0)
    eager, graph = (Engine(with_options(plan, compile=mode), lambda e: None).run()[0]
                    for mode in ("eager", "graph"))
    assert eager.status == "finished", eager.error
    assert graph.status == "finished", graph.error
    report("graphs vs eager, mlp batch 1", eager_host_p50_ms=eager.latency["p50"],
           graph_host_p50_ms=graph.latency["p50"])
    assert graph.latency["p50"] < eager.latency["p50"]


def test_out_of_memory_fails_one_configuration_and_the_sweep_goes_on():
    import runpy

    sweep = runpy.run_path(str(MODELS))["OOM_SWEEP"]  # small, too big (2x the GPU), small
    plan = cuda_plan(f"{MODELS}:memory_hog", batch_sizes=sweep, duration_s=1.0)
    assert [c.batch_size for c in plan.configs] == list(sweep)
    results = Engine(plan, lambda e: None).run()
    report("out of memory", batch_sizes=[r.config.batch_size for r in results],
           statuses=[r.status for r in results], kinds=[r.error_kind for r in results],
           error=results[1].error if len(results) > 1 else None)
    assert [r.config.batch_size for r in results] == list(sweep)
    assert [r.status for r in results] == ["finished", "failed", "finished"]
    assert results[1].error_kind == "out_of_memory"
    # torch's CUDA out-of-memory error on the device, not the engine's host-side input limit
    assert "OutOfMemoryError" in results[1].error or "CUDA out of memory" in results[1].error
    assert "the inputs would take" not in results[1].error


def test_the_nvml_monitor_sees_the_work():
    """Through the monitors a run on cuda gets by default (the CLI's and the TUI's): the run's
    GPU, found through CUDA_VISIBLE_DEVICES and labelled as cuda:0."""
    pytest.importorskip("pynvml")
    (result,) = Engine(cuda_plan("builtin:mlp", batch_sizes=(256,), duration_s=5.0),
                       lambda e: None).run()
    report("nvml", utilisation=result.utilisation.get("gpu0"),
           monitored=sorted(result.utilisation))
    assert result.utilisation["gpu0"]["max"] > 0


def test_the_cuda_bert_preset_runs_end_to_end(tmp_path):
    pytest.importorskip("transformers")
    target = tmp_path / "s.json"
    proc = subprocess.run([sys.executable, "-m", "latency_tui.tui.cli", "run", "--preset",
                           "cuda-bert", "--duration", "3", "--json", str(target)],
                          capture_output=True, text=True, timeout=180, env=os.environ)
    report("cuda-bert end to end", returncode=proc.returncode, stdout_tail=proc.stdout[-1500:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(target.read_text())["results"]
    report("cuda-bert session", batches=[r["config"]["batch_size"] for r in results],
           statuses=[r["status"] for r in results],
           gpu0=[(r.get("utilisation") or {}).get("gpu0") for r in results])
    assert all(r["status"] == "finished" for r in results)
    assert all(r["device_latency_ms"] for r in results)
    try:
        import pynvml  # noqa: F401
    except ImportError:
        return
    assert all((r.get("utilisation") or {}).get("gpu0", {}).get("max", 0) > 0 for r in results)
