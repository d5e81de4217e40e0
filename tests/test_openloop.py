"""Open-loop load through the real engine: latency from each request's scheduled time (queueing
counted), a single server under Poisson arrivals against queueing theory, constant schedules,
and a load generator that cannot keep up, flagged."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import fake_plan
from latency_tui.core.engine import Engine
from latency_tui.core.events import Samples
from latency_tui.core.openloop import LAG_FRACTION, Dispatcher, DispatchLog
from latency_tui.core.specs import RunConfig


def run(plan):
    events = []
    results = Engine(plan, events.append).run()
    return results, events


def served(events):
    """Every served request's (scheduled, start, end), ns since measuring began, by schedule."""
    blocks = [e.block for e in events if isinstance(e, Samples)]
    columns = [np.concatenate([getattr(b, name) for b in blocks])
               for name in ("scheduled_ns", "start_ns", "end_ns")]
    order = np.argsort(columns[0], kind="stable")
    return [c[order] for c in columns]


def open_plan(rate, arrivals="poisson", **kwargs):
    return fake_plan(overrides={"mode": "open", "rates": (rate,), "arrivals": arrivals}, **kwargs)


def lindley_sojourn_ns(scheduled, service):
    """Each request's time from arrival to completion at one FIFO server that starts it at its
    arrival or when the one before it ends, whichever is later (Lindley's recursion), given
    these arrivals and these service times."""
    out = np.empty(len(scheduled), dtype=np.float64)
    free_at = -np.inf
    for n, (arrival, work) in enumerate(zip(scheduled.tolist(), service.tolist())):
        free_at = max(arrival, free_at) + work
        out[n] = free_at - arrival
    return out


@pytest.mark.slow
def test_md1_mean_sojourn_matches_queueing_theory_at_rho_one_half():
    """One server (the fake device sleeping 2 ms, capacity 1, one copy, one worker) under
    Poisson arrivals at 250/s: rho = 0.5, and the mean time from arrival to completion is
    D + rho D / (2 (1 - rho)) = 1.5 D for a constant service time D (M/D/1).

    A busy host changes what is measured, not how: the OS parks the worker now and then for a
    time slice (CI's loaded 2-core machine read 10 % above M/D/1; three busy loops here, 40 %),
    and every request behind it waits. So the checks do not hang on the host being quiet:
    - queueing is counted from the schedule: no request's latency is below what one FIFO server
      gives these arrivals with these service times (Lindley's recursion, exact);
    - the arrivals are Poisson at the rate: Lindley's mean is Pollaczek-Khinchine's
      D + lambda E[S^2] / (2 (1 - rho)) with the measured service moments (M/D/1 when the
      sleep is exact); 3,000 seeded requests, the same traffic every run;
    - the engine adds no queue of its own: the typical request starts within 100 us of the
      moment it could (its arrival, or the end of the one before it)."""
    rate = 250.0
    plan = open_plan(rate, latency_ms=2.0, mode="sleep", capacity=1, samples=3000,
                     duration_s=120)
    (result,), events = run(plan)
    assert result.status == "finished", result.error
    assert result.samples == 3000
    scheduled, start, end = served(events)
    assert (start >= scheduled).all()
    # Latency is end - scheduled, service end - start, queue start - scheduled.
    assert np.mean(end - scheduled) / 1e6 == pytest.approx(result.latency.mean, rel=1e-9)
    service_ns = end - start
    service = result.stages["service"].mean
    assert np.mean(service_ns) / 1e6 == pytest.approx(service, rel=1e-6)
    assert np.mean(start - scheduled) / 1e6 == pytest.approx(result.stages["queue"].mean,
                                                             rel=1e-6)
    rho = rate * service / 1e3
    assert 0.45 < rho < 0.65
    fifo = lindley_sojourn_ns(scheduled, service_ns)
    assert ((end - scheduled) >= fifo - 1).all()
    second_moment = np.mean((service_ns / 1e6) ** 2)
    theory = service + rate / 1e3 * second_moment / (2 * (1 - rho))
    assert np.mean(fifo) / 1e6 == pytest.approx(theory, rel=0.05)
    could_start = np.maximum(scheduled, np.concatenate([[scheduled[0]], end[:-1]]))
    assert np.median(start - could_start) < 100_000
    loop = result.details["open_loop"]
    assert loop["intended_rate_per_s"] == rate and loop["sent"] == loop["served"] == 3000
    assert loop["offered_rate_per_s"] == pytest.approx(rate, rel=0.05)


def test_constant_arrivals_of_several_copies_make_one_evenly_spaced_schedule():
    rate = 200.0
    plan = open_plan(rate, "constant", latency_ms=0.2, mode="sleep", copies=(2,), workers=(2,),
                     duration_s=1.5)
    (result,), events = run(plan)
    assert result.status == "finished", result.error
    scheduled, start, end = served(events)
    gaps = np.diff(scheduled)
    # Two copies at 100/s each, half a gap apart: together one stream at 200/s.
    assert np.abs(gaps - 1e9 / rate).max() <= 2  # ns: rounding only
    assert scheduled.size == pytest.approx(rate * 1.5, abs=2)
    loop = result.details["open_loop"]
    # The offered rate is the sends over the span from the first send to the last: the host
    # delaying either by 30 ms moves it 2 %, so 5 %; a rate bug is 50 % or more off (400/s with
    # each copy at the whole rate, 100/s with each at a quarter of it).
    assert loop["offered_rate_per_s"] == pytest.approx(rate, rel=0.05)
    assert loop["achieved_rate_per_s"] == pytest.approx(rate, rel=0.05)
    assert result.throughput.inferences_per_s == pytest.approx(rate, rel=0.05)
    assert result.config.label.endswith("200/s constant")
    assert set(result.stages) == {"service", "queue"}


def test_a_load_generator_far_behind_its_schedule_is_flagged():
    """A million requests a second is beyond what a Python dispatcher can send on time (a
    microsecond apart): its lag grows, and the result says so (and still counts latency from
    the schedule)."""
    plan = open_plan(1e6, latency_ms=0.0, duration_s=0.5)
    (result,), events = run(plan)
    assert result.status == "finished", result.error
    loop = result.details["open_loop"]
    assert loop["behind"] is True
    assert any("load generator fell behind its schedule" in w for w in result.warnings)
    assert loop["send_lag_us"]["p99"] > LAG_FRACTION * loop["dispatcher_gap_us"]
    scheduled, start, end = served(events)
    assert result.latency.max * 1e6 >= (end - scheduled).max() - 1


def test_dispatch_log_flags_lag_only_above_its_fraction_of_the_gap():
    config = RunConfig(device="fake", rate=500.0)  # one copy: 2 ms between its requests
    due = np.arange(0, 2_000_000_000, 2_000_000, dtype=np.int64)
    on_time = DispatchLog(config, 0, cap=10_000)
    on_time.add(np.vstack([due, due + 900_000]))  # 0.9 ms late: under half the gap
    details, warnings = on_time.report(served=due.size, duration_s=2.0)
    assert details["behind"] is False and not warnings
    assert details["send_lag_us"]["p99"] == pytest.approx(900.0)
    late = DispatchLog(config, 0, cap=10_000)
    late.add(np.vstack([due, due + 1_100_000]))
    details, warnings = late.report(served=due.size - 3, duration_s=2.0)
    assert details["behind"] is True and details["unserved"] == 3
    assert any("fell behind" in w for w in warnings) and any("not served" in w for w in warnings)


@pytest.mark.parametrize("arrivals", ["poisson", "constant"])
def test_each_copy_offers_its_share_of_the_rate(arrivals):
    config = RunConfig(device="fake", copies=4, rate=400.0, arrivals=arrivals)
    streams = [np.array(next(Dispatcher.for_copy(config, i, 10).schedule(0)))
               for i in range(4)]
    merged = np.sort(np.concatenate(streams))
    horizon = min(s[-1] for s in streams)
    count = int((merged < horizon).sum())
    assert count / (horizon / 1e9) == pytest.approx(400.0, rel=0.05)
    assert len({tuple(s[:5]) for s in streams}) == 4  # independent streams, or shifted phases


def test_stop_ends_an_open_loop_promptly_and_keeps_what_was_served():
    import threading

    from helpers import wait_until
    from latency_tui.core.events import RunFinished

    plan = open_plan(100.0, latency_ms=1.0, mode="sleep", duration_s=60)
    events = []
    engine = Engine(plan, events.append)
    thread = threading.Thread(target=engine.run)
    thread.start()
    wait_until(lambda: any(isinstance(e, Samples) for e in events))
    engine.stop()
    thread.join(15)
    assert not thread.is_alive()
    (finished,) = [e for e in events if isinstance(e, RunFinished)]
    (result,) = finished.results
    assert result.status == "cancelled" and result.samples > 0
    assert result.duration_s < 30


@pytest.mark.slow
def test_process_copies_dispatch_their_share_and_end_by_serving_what_they_sent():
    """Two copy processes, each with its own dispatcher at half the rate; early stop ends the
    dispatching ("end") and each copy serves what it had sent before it stops."""
    plan = fake_plan(latency_ms=1.0, mode="sleep", copies=(2,), copy_mode="process",
                     duration_s=30.0, overrides={"mode": "open", "rates": (300.0,),
                                                 "early_stop_pct": 20.0})
    (result,), events = run(plan)
    assert result.status == "finished", result.error
    assert result.details["early_stop"]["stopped_early"] is True and result.duration_s < 20
    loop = result.details["open_loop"]
    assert loop["sent"] == loop["served"] == result.samples and loop["unserved"] == 0
    assert loop["offered_rate_per_s"] == pytest.approx(300.0, rel=0.15)
    scheduled, start, end = served(events)
    assert (start >= scheduled).all() and (end > start).all()


def synthetic(config, trial, p99_ms, served_per_s):
    """A finished result whose p99 interval is [0.95, 1.05] x ``p99_ms``."""
    from latency_tui.core.measurement import ConfigResult, LatencySummary, Throughput

    latency = LatencySummary(count=10_000, min=0.1, mean=p99_ms / 2, std=0.1, max=p99_ms * 2,
                             percentiles={"p50": p99_ms / 2, "p90": p99_ms * 0.8,
                                          "p95": p99_ms * 0.9, "p99": p99_ms,
                                          "p99.9": p99_ms * 1.5},
                             intervals={"p99": (p99_ms * 0.95, p99_ms * 1.05)})
    details = {"open_loop": {"achieved_rate_per_s": served_per_s, "unserved": 0,
                             "behind": False}} if config.rate else {}
    return ConfigResult(config=config, status="finished", samples=10_000, duration_s=10.0,
                        latency=latency, throughput=Throughput(served_per_s, served_per_s),
                        trial=dict(trial.info), details=details)


def test_rate_search_bisects_to_the_highest_rate_that_meets_the_bound():
    """A server of capacity 1,000/s whose p99 is 1 ms / (1 - rate / 1,000): p99 <= 5 ms holds
    up to 800/s; with the interval's upper end judged (5 % above p99), up to 790/s."""
    from latency_tui.core.rates import RateSearch

    search = RateSearch(RunConfig(device="fake"), 5.0, tolerance=0.02, budget=12)
    history = []
    while True:
        trial = search.propose(history)
        if trial is None:
            break
        assert search.propose(history) is trial  # asked twice before it ran: the same trial
        rate = trial.config.rate
        if rate is None:  # the capacity trial: closed loop
            history.append(synthetic(trial.config, trial, 50.0, 1000.0))
        else:
            p99 = 1.0 / (1 - rate / 1000.0) if rate < 1000 else 1e6
            history.append(synthetic(trial.config, trial, p99, min(rate, 1000.0)))
    outcome = search.outcome()
    assert outcome["done"] and outcome["stopped_because"] == "converged"
    assert outcome["tried"][0]["phase"] == "capacity" and outcome["trials"] <= 12
    best = outcome["best"]
    assert 790 * 0.97 <= best["rate"] <= 790 and best["verdict"] == "meets"
    assert outcome["range"][1] - outcome["range"][0] <= 0.02 * outcome["range"][1]
    assert "requests/s meets p99 <= 5 ms" in outcome["summary"]


def test_rate_search_runs_through_the_engine_and_records_its_trials():
    from latency_tui.core.rates import RateSearch

    plan = fake_plan(latency_ms=2.0, mode="sleep", capacity=1, duration_s=0.6)
    search = RateSearch(plan.configs[0], 30.0, budget=3)
    results = Engine(plan, lambda event: None).run(search)
    assert [r.trial["phase"] for r in results] == ["capacity", "bisect", "bisect"]
    assert results[0].config.rate is None and results[1].config.rate > 0
    assert results[1].details["open_loop"]["intended_rate_per_s"] == results[1].config.rate
    outcome = search.outcome()
    assert outcome["stopped_because"] == "budget" and outcome["trials"] == 3
    assert all(p["verdict"] in ("meets", "fails", "uncertain", "error") for p in outcome["tried"])


def test_rate_search_abandons_an_overloaded_rate_at_the_engines_next_check():
    """At twice the copies' capacity the queue only grows: the trial is abandoned once p99 is
    surely above the bound (after 0.5 s and 50 samples), not run for its 20 s."""
    from latency_tui.core.rates import RateSearch

    plan = fake_plan(latency_ms=2.0, mode="sleep", capacity=1, duration_s=20.0)
    search = RateSearch(plan.configs[0], 30.0, max_rate=2000.0, budget=1)
    (result,) = Engine(plan, lambda event: None).run(search)
    assert result.config.rate == 1000.0 and result.trial["abandon_p99_above_ms"] == 30.0
    abandoned = result.details["abandoned"]
    assert result.status == "finished" and result.duration_s < 10.0
    assert abandoned["p99_low_ms"] > 30.0 and 0.5 <= abandoned["after_s"] < 10.0
    (tried,) = search.outcome()["tried"]
    assert tried["verdict"] == "fails" and tried["abandoned_after_s"] == abandoned["after_s"]
    assert "abandoned after" in tried["why"]
