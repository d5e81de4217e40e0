"""The engine end to end on the fake device: events, stop rules, warm-up, failures, copies."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import fake_plan, sample_latencies_ms, wait_until
from latency_tui.core.engine import Engine
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, ModelLoaded, Progress, RunFinished, RunStarted, Samples,
    WarmupFinished,
)

WORKLOADS = Path(__file__).parent / "workloads.py"


def run(plan):
    events = []
    results = Engine(plan, events.append).run()
    return results, events


def test_events_tell_the_whole_run_in_order_and_samples_add_up():
    results, events = run(fake_plan(batch_sizes=(1, 4), duration_s=0.3))
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    assert kinds.count(ConfigStarted) == 2 and kinds.count(ConfigFinished) == 2
    assert [r.status for r in results] == ["finished", "finished"]
    for index, result in enumerate(results):
        streamed = sum(e.latencies_ns.size for e in events if isinstance(e, Samples) and e.index == index)
        assert streamed == result.samples > 0
        mine = [type(e) for e in events if getattr(e, "index", None) == index]
        assert mine.index(ModelLoaded) < mine.index(WarmupFinished) < mine.index(Samples)
        assert mine[-1] is ConfigFinished
    assert any(isinstance(e, Progress) for e in events)
    assert results[1].config.batch_size == 4
    assert results[1].throughput.samples_per_s == pytest.approx(4 * results[1].throughput.inferences_per_s)


def assert_faithful(result, events, nominal_ms, index=None, rel=0.05):
    """The samples of a busy-waiting device of ``nominal_ms`` read that time, and the summary
    is theirs. Every call spins at least ``nominal_ms`` on the clock the engine reads, so no
    sample may read less. A loaded host preempts many calls (p50 reads 20-70 % high) but not
    90 % of them, so p10 is an unpreempted call: the spin plus the harness's own overhead,
    judged tightly (an overhead inside the timed window or a unit error shifts every sample,
    p10 with them). The reported p50 must be the samples' own (exactly) and at least the spin."""
    latency = sample_latencies_ms(events, index)
    assert latency.min() >= nominal_ms
    assert np.percentile(latency, 10) == pytest.approx(nominal_ms, rel=rel)
    assert result.latency["p50"] == pytest.approx(np.percentile(latency, 50), rel=1e-9)
    assert result.latency["p50"] >= nominal_ms


def test_latency_is_measured_faithfully_on_a_busy_waiting_device():
    (result,), events = run(fake_plan(latency_ms=0.5, duration_s=0.5))
    assert_faithful(result, events, 0.5)
    assert result.throughput.inferences_per_s == pytest.approx(result.samples / result.duration_s)
    assert result.duration_s == pytest.approx(0.5, abs=0.05)


def test_warmup_samples_never_enter_the_results():
    plan = fake_plan(latency_ms=0.2, cold_ms=30.0, decay_iterations=20, decay_ms=20.0,
                     samples=30, duration_s=30,
                     warmup={"min_iterations": 5, "max_iterations": 500, "window": 5, "max_s": 5})
    (result,), events = run(plan)
    assert result.first_inference_ms >= 30
    assert result.warmup_iterations > 20  # it waited for the decay to end
    assert result.warmup_stable is True
    # 30 samples: had the 20 decaying warm-up calls (20 ms down to 1 ms) been kept, most of them
    # would be, and the median would be above 1 ms. (A median, not a p99: on a loaded machine a
    # single 0.2 ms sample can be preempted for several ms.)
    assert result.samples == 30 and result.latency["p50"] < 1.0


def test_warmup_that_never_stabilises_is_reported():
    plan = fake_plan(latency_ms=0.3, jitter_ms=0.15, seed=1,
                     warmup={"min_iterations": 5, "max_iterations": 30, "window": 10,
                             "tolerance": 0.001, "max_s": 5})
    (result,), _ = run(plan)
    assert result.warmup_stable is False and result.warmup_iterations == 30
    assert any("warm-up did not stabilise" in w for w in result.warnings)


@pytest.mark.parametrize("samples, copies, workers", [(500, 1, 1), (10, 1, 3), (1001, 2, 2)])
def test_sample_count_stop_rule_runs_exactly_that_many(samples, copies, workers):
    (result,), _ = run(fake_plan(latency_ms=0.05, mode="sleep", samples=samples, duration_s=30,
                                 copies=(copies,), workers=(workers,)))
    assert result.samples == samples


def test_a_failing_configuration_is_recorded_and_the_others_still_run():
    plan = fake_plan(model=f"{WORKLOADS}:fails_at_batch_8", batch_sizes=(1, 8, 2))
    plan = plan.__class__(**{**plan.__dict__, "configs": tuple(
        c.__class__(**{**c.__dict__, "device": "cpu", "device_options": {}}) for c in plan.configs)})
    results, _ = run(plan)
    assert [r.status for r in results] == ["finished", "failed", "finished"]
    assert "batch 8 is not supported" in results[1].error
    assert results[1].error.startswith("ValueError")


def test_a_device_failure_mid_run_fails_the_configuration():
    (result,), _ = run(fake_plan(fail_on="infer", fail_after=100, duration_s=5))
    assert result.status == "failed"
    assert "inference 100 failed" in result.error


def test_stop_cancels_the_configuration_in_progress_and_skips_the_rest():
    plan = fake_plan(batch_sizes=(1, 2, 3), duration_s=30)
    events = []
    engine = Engine(plan, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    wait_until(lambda: any(isinstance(e, Samples) for e in events))
    asked = time.perf_counter()
    engine.stop()
    thread.join(10)
    assert time.perf_counter() - asked < 1.0
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert finished.cancelled
    assert [r.status for r in finished.results] == ["cancelled"]
    assert finished.results[0].samples > 0 and finished.results[0].latency is not None


def test_past_the_sample_cap_percentiles_come_from_the_histogram():
    plan = fake_plan(latency_ms=0.02, duration_s=0.3)
    plan = plan.__class__(**{**plan.__dict__, "sample_cap": 1000})
    (result,), _ = run(plan)
    assert result.samples > 1000
    assert result.latency.exact is False
    assert 0 < result.latency.relative_error <= 0.01


def test_thread_copies_and_workers_multiply_the_streams():
    (result,), events = run(fake_plan(latency_ms=1.0, mode="sleep", copies=(2,), workers=(2,),
                                      duration_s=0.5))
    # Four sleeping streams overlap: well above one stream's throughput (1,000/s).
    assert result.throughput.inferences_per_s > 1.5 * 1000
    assert len(result.details["warmup_iterations_per_copy"]) == 2


@pytest.mark.slow
def test_copies_as_spawned_processes():
    (result,), events = run(fake_plan(latency_ms=0.5, copies=(2,), copy_mode="process",
                                      duration_s=0.5))
    assert result.status == "finished", result.error
    assert len(result.details["warmup_iterations_per_copy"]) == 2
    streamed = sum(e.latencies_ns.size for e in events if isinstance(e, Samples))
    assert streamed == result.samples
    assert_faithful(result, events, 0.5)  # p10 within 5 %: see assert_faithful
    # Scaling across processes is a benchmark's job (benchmarks/), not a timed test's.


@pytest.mark.slow
def test_a_copy_process_that_fails_to_load_fails_the_configuration():
    (result,), _ = run(fake_plan(model=f"{WORKLOADS}:failing_factory", copy_mode="process",
                                 copies=(2,)))
    assert result.status == "failed"
    assert "weights are corrupt" in result.error


def test_preprocess_and_postprocess_are_timed_apart():
    plan = fake_plan(latency_ms=0.2, duration_s=0.3)
    model = plan.model.__class__(source="builtin:noop", preprocess=f"{WORKLOADS}:preprocess",
                                 postprocess=f"{WORKLOADS}:count_calls")
    plan = plan.__class__(**{**plan.__dict__, "model": model})
    (result,), events = run(plan)
    assert result.status == "finished", result.error
    assert set(result.stages) == {"end_to_end", "preprocess", "postprocess"}
    # Each sample's end to end holds its inference and more, so its p50 is above, load or not.
    assert result.stages["end_to_end"]["p50"] > result.latency["p50"]
    assert_faithful(result, events, 0.2)  # the inference alone: p10 within 5 % of 0.2 ms


def test_engine_reports_a_busy_wait_within_2_percent_of_a_bare_timed_loop():
    """The harness must not distort what it measures: p10 of a 200 us busy-wait model through
    the whole engine (file source, CPU backend, worker thread, collector) against a bare
    perf_counter_ns loop over the same function. p10, not p50: on a loaded host preemption
    inflates many calls of either loop (p50 by up to 20 %, and not equally in the two) but not
    90 % of them, so p10 is an unpreempted call of each, and any overhead the engine adds
    inside its timed window (2 % is 4 us) still shows there."""
    import importlib.util
    from time import perf_counter_ns

    from latency_tui.core.plan import Overrides, build_plan
    from latency_tui.core.presets import parse_preset

    spec = importlib.util.spec_from_file_location("workloads_bare", WORKLOADS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    bare = np.empty(2000, dtype=np.int64)
    for i in range(bare.size):
        t0 = perf_counter_ns()
        module.busy_wait()
        bare[i] = perf_counter_ns() - t0
    bare_p10 = np.percentile(bare, 10) / 1e6

    preset = parse_preset(f'[model]\nsource = "{WORKLOADS}:busy_factory"\n[run]\ndevice = "cpu"\n',
                          name="busy", path=None, origin="file", where="test")
    (result,), events = run(build_plan(preset, Overrides(samples=2000)))
    assert result.status == "finished", result.error
    latency = sample_latencies_ms(events)
    assert np.percentile(latency, 10) == pytest.approx(bare_p10, rel=0.02)
    # and what the engine reports is those samples
    assert result.latency["p50"] == pytest.approx(np.percentile(latency, 50), rel=1e-9)


@pytest.mark.slow
def test_a_copy_process_that_dies_mid_run_fails_with_a_sane_duration():
    (result,), _ = run(fake_plan(model=f"{WORKLOADS}:dies_after_a_while", copy_mode="process",
                                 duration_s=5, device_name="cpu"))
    assert result.status == "failed"
    assert "died (exit code 3)" in result.error
    assert 0.001 < result.duration_s < 10


@pytest.mark.slow
def test_stop_during_warmup_of_process_copies_is_prompt():
    plan = fake_plan(latency_ms=5.0, copies=(2,), copy_mode="process",
                     warmup={"min_iterations": 100000, "max_iterations": 200000, "window": 5,
                             "max_s": 60})
    events = []
    engine = Engine(plan, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    wait_until(lambda: any(getattr(e, "phase", None) == "warmup" for e in events))
    time.sleep(2.0)  # the copies are loaded and warming up
    asked = time.perf_counter()
    engine.stop()
    thread.join(30)
    assert time.perf_counter() - asked < 3.0
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    assert [r.status for r in finished.results] == ["cancelled"]
