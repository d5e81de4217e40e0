"""Early stop through the real engine: a configuration ends once p99's confidence interval is
within +-X % of p99, never before its minimum duration and sample count, and at its maximum
when the interval never gets that tight; the progress says how close it is."""

from __future__ import annotations

import pytest

from helpers import fake_plan
from latency_tui.core.backends.fake import FakeBackend
from latency_tui.core.engine import Engine
from latency_tui.core.events import Progress
from latency_tui.core.specs import StopRule

#: A steady configuration's own tail: every 40th call takes 50 ms, the rest 0.2 ms.
TAIL_EVERY, TAIL_MS, BASE_MS = 40, 50.0, 0.2


def steady_with_a_tail(batch, copy, worker, i):
    """A fake-device handler whose p99 the workload sets, not the host: 2.5 % of calls are
    50 ms sleeps, so p99 and the ranks of its interval (p98.x to p99.x) lie among them, and
    they read 50 ms plus a wake-up of well under 2.5 ms (+-5 %) even on a loaded machine. (The
    p99 of a bare 0.2 ms spin is whatever stalls the host has, and may never settle.)"""
    return TAIL_MS if i % TAIL_EVERY == TAIL_EVERY - 1 else BASE_MS


def steady_plan():
    """Early stop at +-5 % on the workload above, 30 s at most; (plan, engine options)."""
    plan = early_plan(5.0, mode="sleep", duration_s=30.0)
    return plan, {"backend_factory": lambda config: FakeBackend(config.device_options,
                                                                handler=steady_with_a_tail)}


def run(plan, **engine_options):
    events = []
    (result,) = Engine(plan, events.append, **engine_options).run()
    assert result.status == "finished", result.error
    return result, [e.fraction for e in events if isinstance(e, Progress)]


def early_plan(pct, *, min_s=None, min_samples=None, duration_s=30.0, **device):
    """A plan with early stop at ``pct``; minimums, when given, through the preset's keys."""
    from latency_tui.core.plan import build_plan
    from latency_tui.core.presets import parse_preset

    plan = fake_plan(duration_s=duration_s, overrides={"early_stop_pct": pct}, **device)
    if min_s is None and min_samples is None:
        return plan
    lines = [f"early_stop_pct = {pct}", f"duration_s = {duration_s}"]
    if min_s is not None:
        lines.append(f"early_stop_min_s = {min_s}")
    if min_samples is not None:
        lines.append(f"early_stop_min_samples = {min_samples}")
    options = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in device.items())
    text = ('[model]\nsource = "builtin:noop"\n[run]\ndevice = "fake"\n' + "\n".join(lines)
            + f"\n[device]\n{options}\n[warmup]\nmin_iterations = 3\nmax_iterations = 50\n"
              "window = 5\nmax_s = 2.0\n")
    return build_plan(parse_preset(text, name="early", path=None, origin="file", where="test"))


def test_a_steady_configuration_stops_well_before_its_maximum():
    plan, options = steady_plan()
    result, fractions = run(plan, **options)
    early = result.details["early_stop"]
    assert early["stopped_early"] is True and early["p99_interval_pct"] <= 5.0
    assert result.duration_s < 15.0  # the maximum is 30 s
    assert 1.0 <= early["at_s"] and result.samples >= 1000  # the default minimums
    low, high = result.latency.intervals["p99"]
    p99 = result.latency["p99"]
    assert TAIL_MS <= low  # p99 is the workload's tail
    assert max(p99 - low, high - p99) <= 0.05 * p99 * 1.5  # the final interval, a few more samples
    assert fractions[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in fractions)
    assert not any("early stop" in w for w in result.warnings)


def test_a_noisy_configuration_does_not_stop_before_its_minimums():
    result, _ = run(early_plan(30.0, min_s=1.5, min_samples=2000, latency_ms=0.5,
                               jitter_ms=0.4, seed=5, duration_s=20.0))
    early = result.details["early_stop"]
    assert early["stopped_early"] is True  # +-30 % is met at once, but not obeyed before...
    assert early["at_s"] >= 1.5 and result.duration_s >= 1.5 and result.samples >= 2000


def test_an_interval_that_never_gets_tight_enough_runs_to_the_maximum_and_says_so():
    result, fractions = run(early_plan(0.2, latency_ms=0.5, jitter_ms=0.4, seed=5,
                                       duration_s=1.5))
    early = result.details["early_stop"]
    assert early["stopped_early"] is False and early["at_s"] is None
    assert early["p99_interval_pct"] > 0.2
    assert result.duration_s == pytest.approx(1.5, abs=0.3)
    assert any("early stop: p99's interval was still" in w for w in result.warnings)
    assert max(fractions) <= 1.0


def test_early_stop_in_open_loop_serves_every_request_sent():
    # Idle, it stops within 3 s; a loaded machine's stalls keep p99's interval wide for longer.
    plan = fake_plan(latency_ms=0.5, mode="sleep", duration_s=60.0,
                     overrides={"mode": "open", "rates": (400.0,), "early_stop_pct": 20.0})
    result, _ = run(plan)
    assert result.details["early_stop"]["stopped_early"] is True
    assert result.duration_s < 30.0
    loop = result.details["open_loop"]
    assert loop["unserved"] == 0 and loop["sent"] == result.samples


def test_the_default_minimums_yield_to_a_shorter_maximum():
    plan = fake_plan(duration_s=0.5, samples=300, overrides={"early_stop_pct": 5.0})
    assert plan.stop.early_stop_min_s == 0.5 and plan.stop.early_stop_min_samples == 300


def test_the_stop_rule_measures_the_interval_and_how_close_it_is():
    rule = StopRule(early_stop_pct=5.0, early_stop_min_s=2.0, early_stop_min_samples=1000)
    assert rule.interval_width_pct(10.0, 9.0, 10.2) == pytest.approx(10.0)  # the wider side
    assert rule.early_stop_closeness(1.0, 5000, 5.0) == pytest.approx(0.5)  # time's the least
    assert rule.early_stop_closeness(5.0, 5000, 10.0) == pytest.approx(0.5)  # the width
    assert rule.early_stop_closeness(5.0, 5000, 4.0) == 1.0
    assert rule.early_stop_closeness(5.0, 5000, None) == 0.0
    assert not rule.may_stop_early(1.9, 5000) and not rule.may_stop_early(3.0, 999)
    assert rule.may_stop_early(2.0, 1000)
    assert not StopRule().may_stop_early(100.0, 10**6)


def test_progress_says_how_wide_p99s_interval_is_against_its_target():
    events = []
    plan, options = steady_plan()
    Engine(plan, events.append, **options).run()
    progress = [e for e in events if isinstance(e, Progress)]
    assert all(e.early_stop_target == 5.0 for e in progress)
    widths = [e.early_stop for e in progress if e.early_stop is not None]
    assert widths and widths[-1] <= 5.0  # it stopped once the interval was that tight
    assert progress[0].early_stop is None or progress[0].early_stop > 0

    events.clear()
    Engine(fake_plan(duration_s=0.3), events.append).run()  # early stop off
    assert all(e.early_stop is None and e.early_stop_target is None
               for e in events if isinstance(e, Progress))
