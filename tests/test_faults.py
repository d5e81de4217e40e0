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


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_eight_hung_copies_stop_within_one_shared_grace_not_one_grace_per_copy(mode):
    """Every copy is asked at once and all share one deadline: the stop takes about one grace
    (it took a grace per copy, plus one: 9 s here; the bound, 4 s, leaves a loaded host room
    on top of the one 1 s grace), and no copy process is left."""
    import threading

    from latency_tui.core.events import RunFinished, Samples

    grace = 1.0
    plan = fake_plan(copies=(8,), copy_mode=mode, mode="sleep", latency_ms=1.0, hang_after=80,
                     duration_s=60)
    events = []
    engine = Engine(plan, events.append, stop_grace_s=grace)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    # Every copy is past its 80th call, and all eight hang, once samples stop coming (the
    # engine collects them every 0.1 s; a copy still measuring adds one every millisecond).
    deadline = time.monotonic() + 60
    counted, since = 0, time.monotonic()
    while time.monotonic() < deadline:
        now = sum(e.block.size for e in list(events) if isinstance(e, Samples))
        if now != counted:
            counted, since = now, time.monotonic()
        elif counted and time.monotonic() - since >= 0.5:
            break
        time.sleep(0.02)
    assert counted, "no samples within 60 s"
    asked = time.monotonic()
    engine.stop()
    thread.join(30)
    took = time.monotonic() - asked
    assert not thread.is_alive()
    assert took < 4.0, f"the stop took {took:.2f} s"  # a grace per copy, plus one: 9 s
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    (result,) = finished.results
    assert result.status == "cancelled" and result.samples > 0
    assert any("did not end within 1 s" in w for w in result.warnings), result.warnings
    assert stray_children() == []


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_first_inference_that_never_returns_ends_within_timeout_and_warmup_max(mode):
    """--timeout 1 --warmup-max 1.5: the first (cold) inference is given 1.5 s, not 600."""
    plan = fake_plan(copy_mode=mode, mode="sleep", hang_after=0, duration_s=5,
                     overrides={"timeout_s": 1.0, "warmup_max_s": 1.5})
    assert plan.warmup.first_timeout_s == 1.5
    began = time.monotonic()
    (result,), _ = run(plan, stop_grace_s=0.5)
    assert time.monotonic() - began < 1.5 + 0.5 + 10  # process copies take seconds to start
    assert result.status == "failed" and result.error_kind == "timeout", result.error
    assert "timeout of 1.5 s while warming up" in result.error
    assert stray_children() == []


@pytest.mark.parametrize("overrides, bound", [
    ({}, 600.0),  # the preset's warmup.first_timeout_s
    ({"timeout_s": 2.0}, 2.0),
    ({"timeout_s": 2.0, "warmup_max_s": 3.0}, 3.0),  # the larger of the two
    ({"timeout_s": 5.0, "warmup_max_s": 3.0}, 5.0),
    ({"timeout_s": 9000.0}, 600.0),  # never more than the preset allows
    ({"warmup_max_s": 3.0}, 600.0),  # --warmup-max alone bounds the warm-up, not one inference
    ({"timeout_s": 2.0, "first_timeout_s": 60.0}, 60.0),  # --first-timeout says it outright
])
def test_the_first_inference_bound_follows_timeout_and_warmup_max_unless_given(overrides, bound):
    assert fake_plan(overrides=overrides).warmup.first_timeout_s == bound


def test_a_first_timeout_out_of_range_is_refused_at_planning():
    from latency_tui.core.errors import UserError

    with pytest.raises(UserError, match="--first-timeout: must be more than 0"):
        fake_plan(overrides={"first_timeout_s": 0.0})
