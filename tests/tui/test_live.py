"""The display's model, fed by events (the real engine's and the scripted run's), without
Textual; and the histogram's bins, counted from the engine's own sample store."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers import fake_plan
from latency_tui.core.api import ConfigResult, SampleStream
from latency_tui.core.engine import Engine
from latency_tui.core.events import ConfigStarted, Progress, Samples
from latency_tui.core.specs import RunConfig
from latency_tui.core.streams import Block
from latency_tui.tui.bins import histogram_bins
from latency_tui.tui.live import (
    EventBuffer,
    LiveConfig,
    LiveRun,
    busy_host_notices,
    estimate_remaining,
    result_notices,
)
from protocol import protocol_errors

from .conftest import write_presets
from .scripted import ScriptedRun


def sweep_plan(name="fake-sweep"):
    from latency_tui.core import api

    write_presets()
    return api.plan_with(api.load_preset(name), {})


def fold(plan, events):
    run = LiveRun(1, plan)
    notices = []
    for event in events:
        notices.extend(run.apply(event))
    return run, notices


def scripted_events(plan, **options):
    buffer = EventBuffer()
    handle = ScriptedRun(plan, buffer, **options)
    assert handle.wait(30)
    return buffer.drain()


def block(latencies_ns, end_s):
    latencies = np.asarray(latencies_ns, dtype=np.int64)
    ends = np.full(latencies.size, int(end_s * 1e9), np.int64)
    return Block(ends - latencies, ends)


def test_event_buffer_takes_events_from_many_threads_without_loss():
    buffer = EventBuffer()

    def emit(k):
        for i in range(1000):
            buffer(Progress(k, float(i), i))

    threads = [threading.Thread(target=emit, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    drained = []
    while any(t.is_alive() for t in threads):
        drained.extend(buffer.drain())
    for t in threads:
        t.join(10)
    drained.extend(buffer.drain())
    assert len(drained) == 4000
    assert buffer.drain() == []


def test_the_scripted_run_speaks_the_engines_protocol():
    """The TUI's tests stand on the scripted run only as far as it emits what the real engine
    emits: both are checked against the one documented order."""
    plan = sweep_plan()
    assert protocol_errors(scripted_events(plan, fail_batch=4)) == []
    events = []
    Engine(fake_plan(batch_sizes=(1, 2), duration_s=0.2), events.append).run()
    assert protocol_errors(events) == []
    phases = [e.phase for e in events if getattr(e, "phase", None)]
    assert "preparing" not in phases  # the old fake emitted a phase the engine never does


def test_a_real_run_folds_into_the_model_with_the_engines_own_figures():
    events = []
    Engine(fake_plan(batch_sizes=(1, 2), duration_s=1.2, latency_ms=0.3, mode="sleep"),
           events.append).run()
    plan = events[0].plan
    run, notices = fold(plan, events)
    assert run.state == "finished"
    for live in run.configs.values():
        # The same store and cap as the engine: every sample, and the same summary.
        assert live.count == live.result.samples == live.streams.count
        assert live.streams.latency.summary() == live.result.latency
        assert live.streams.timeline.build(len(live.result.timeline)) == live.result.timeline
        assert live.streams.cap == plan.sample_cap


def test_a_scripted_run_folds_into_the_model():
    plan = sweep_plan()
    run, notices = fold(plan, scripted_events(plan, fail_batch=4, unstable_index=1))
    assert run.state == "finished"
    assert [c.status for c in run.configs.values()] == ["finished", "finished", "failed",
                                                         "finished"]
    first = run.configs[0]
    assert first.count == 4000 == first.streams.latency.sorted_ns().size
    assert first.summary() is first.result.latency
    assert first.throughput().inferences_per_s == pytest.approx(800)
    assert len(first.timeline()) == 5 and all(p > 0 for p in first.timeline().p99_ms)
    assert run.model["name"] == "mlp"
    levels = [n.level for n in notices]
    assert "error" in levels
    # The unstable warm-up is reported once, when it ends, not again with the result.
    assert sum("warm-up" in n.text for n in notices) == 1


def test_live_summary_is_recomputed_only_on_new_samples():
    live = LiveConfig("1:0", 0, RunConfig())
    rng = np.random.default_rng(1)
    live.streams.add(block((rng.lognormal(0, 0.1, 500) * 1e6), 0.5))
    first = live.summary()
    assert live.summary() is first
    live.streams.add(block((rng.lognormal(0, 0.1, 500) * 1e6), 1.0))
    assert live.summary() is not first
    assert live.summary().count == 1000


def test_the_live_timeline_shows_whole_seconds_only():
    live = LiveConfig("1:0", 0, RunConfig(batch_size=4))
    for i in range(25):  # 0.1 s apart, 100 samples of 2 ms each
        live.streams.add(block(np.full(100, 2_000_000), 0.1 * i + 0.05))
        live.elapsed_s = 0.1 * (i + 1)
    timeline = live.timeline()
    assert timeline.inferences == (1000, 1000)  # the third second has only begun
    assert timeline.p99_ms[0] == pytest.approx(2.0, rel=0.01)


def test_a_stopped_run_marks_the_rest_skipped():
    plan = sweep_plan()
    buffer = EventBuffer()
    handle = ScriptedRun(plan, buffer, pause_at=(1, 2), pause_timeout_s=5)
    assert handle.paused.wait(5)
    handle.stop()
    assert handle.wait(5)
    run, _ = fold(plan, buffer.drain())
    assert run.state == "cancelled"
    assert [c.status for c in run.configs.values()] == ["finished", "cancelled", "skipped",
                                                         "skipped"]


def test_remaining_time_counts_the_current_and_pending_configurations():
    plan = sweep_plan()  # 4 configurations x 5 s
    run = LiveRun(1, plan)
    assert estimate_remaining(run) is None
    run.apply(ConfigStarted(0, 4, plan.configs[0]))
    run.apply(Samples(0, block(np.full(10, 1000), 2.0), 2.0))
    assert estimate_remaining(run) == pytest.approx(3.0 + 3 * 5.0)


def test_busy_host_warning():
    assert busy_host_notices({"load_average": [0.2, 0, 0], "logical_cpus": 8}) == []
    (notice,) = busy_host_notices({"load_average": [6.5, 0, 0], "logical_cpus": 8})
    assert notice.level == "warning" and "6.50 on 8 CPUs" in notice.text


def test_result_notices_name_the_configuration():
    config = RunConfig(batch_size=8, copies=2, workers_per_copy=2)
    (error,) = result_notices(ConfigResult(config, "failed", error="boom"))
    assert error == ("error", "batch 8, 2 x 2: failed: boom")
    notices = result_notices(ConfigResult(config, "finished", warnings=("a", "a", "b")))
    assert [n.text for n in notices] == ["batch 8, 2 x 2: a", "batch 8, 2 x 2: b"]


def stream_of(ms, cap=10**9):
    stream = SampleStream(cap)
    stream.add(np.round(np.asarray(ms) * 1e6).astype(np.int64))
    return stream


def test_histogram_range_keeps_the_body_readable_despite_outliers():
    ms = np.concatenate([np.random.default_rng(0).normal(10, 0.5, 10000), [500.0] * 5])
    bins = histogram_bins(stream_of(ms), bins=20)
    assert bins.high < 20 and bins.above >= 5 and not bins.log
    below = np.count_nonzero(np.round(ms * 1e6) < np.round(bins.low * 1e6))
    assert bins.counts.sum() + bins.above + below == ms.size
    flat = histogram_bins(stream_of(np.full(10, 3.0)), bins=5)
    assert flat.low < 3.0 < flat.high and flat.counts.sum() == 10


def test_a_long_tail_gets_log_spaced_bins():
    rng = np.random.default_rng(0)
    ms = np.concatenate([rng.normal(0.05, 0.002, 9800), rng.uniform(0.2, 0.3, 200)])
    bins = histogram_bins(stream_of(ms), bins=40)
    assert bins.log
    widths = np.diff(np.log10(bins.centres))
    assert np.allclose(widths, widths[0])


def test_past_the_cap_the_bins_come_from_the_histogram():
    rng = np.random.default_rng(2)
    ms = rng.lognormal(0, 0.2, 3000)
    exact, capped = histogram_bins(stream_of(ms), 20), histogram_bins(stream_of(ms, cap=1000), 20)
    assert capped.counts.sum() + capped.above == pytest.approx(
        exact.counts.sum() + exact.above, abs=30)
