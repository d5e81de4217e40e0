"""Faults injected into the engine: inferences that never return, user code that exits, a
copy that dies; each must end its configuration with a clear kind and reason, leave the sweep
going and leave nothing running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from helpers import fake_plan, stray_children
from latency_tui.core.engine import Engine

WORKLOADS = Path(__file__).parent / "workloads.py"


def run(plan, **options):
    events = []
    results = Engine(plan, events.append, **options).run()
    return results, events


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_inference_past_its_timeout_fails_that_configuration_and_the_sweep_goes_on(mode):
    plan = fake_plan(batch_sizes=(1, 2), copy_mode=mode, mode="sleep", duration_s=30,
                     handler=f"{WORKLOADS}:hangs_at_batch_1")
    plan = plan.__class__(**{**plan.__dict__, "stop": plan.stop.__class__(
        duration_s=1.0, timeout_s=0.5)})
    began = time.monotonic()
    results, _ = run(plan, stop_grace_s=0.5)
    assert time.monotonic() - began < 20
    assert [r.status for r in results] == ["failed", "finished"]
    assert results[0].error_kind == "timeout" and "ran past its timeout of 0.5 s" in results[0].error
    assert results[1].samples > 0
    assert stray_children() == []


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_tight_timeout_does_not_fire_on_a_healthy_run(mode):
    """The watchdog must not count the wait for the common start instant (a quarter of a
    second for process copies) as an inference."""
    plan = fake_plan(copies=(2,), workers=(2,), copy_mode=mode, mode="sleep", latency_ms=1.0,
                     duration_s=1.0)
    plan = plan.__class__(**{**plan.__dict__, "stop": plan.stop.__class__(
        duration_s=1.0, timeout_s=0.15)})
    (result,), _ = run(plan)
    assert result.status == "finished", result.error


def test_a_hang_in_warm_up_is_a_timeout_too():
    plan = fake_plan(mode="sleep", latency_ms=1.0, hang_after=5, duration_s=5,
                     warmup={"min_iterations": 50, "max_iterations": 100, "window": 5,
                             "max_s": 5})
    plan = plan.__class__(**{**plan.__dict__, "stop": plan.stop.__class__(
        duration_s=5.0, timeout_s=0.3)})
    began = time.monotonic()
    (result,), _ = run(plan, stop_grace_s=0.3)
    assert time.monotonic() - began < 5
    assert result.status == "failed" and result.error_kind == "timeout"
    assert "while warming up" in result.error


def test_sys_exit_in_a_factory_fails_the_configuration_not_the_tool():
    (result,), _ = run(fake_plan(model=f"{WORKLOADS}:exits_in_factory", device_name="cpu"))
    assert result.status == "failed" and result.error_kind == "exit"
    assert "exits_in_factory() called sys.exit(0)" in result.error


def test_a_factory_that_parses_the_command_line_does_not_see_ours(monkeypatch):
    monkeypatch.setattr("sys.argv", ["latency-tui", "run", "--preset", "cpu-mlp"])
    (result,), _ = run(fake_plan(model=f"{WORKLOADS}:parses_the_command_line",
                                 device_name="cpu"))
    assert result.status == "finished", result.error
    import sys

    assert sys.argv == ["latency-tui", "run", "--preset", "cpu-mlp"]  # given back


def test_keyboard_interrupt_raised_by_a_model_is_that_models_failure():
    def handler(batch, copy, worker, i):
        if i == 20:
            raise KeyboardInterrupt
        return 0.1

    from latency_tui.core.backends.fake import FakeBackend

    (result,), _ = run(fake_plan(duration_s=2),
                       backend_factory=lambda c: FakeBackend(c.device_options, handler=handler))
    assert result.status == "failed" and result.error_kind == "exit"
    assert "KeyboardInterrupt" in result.error
