"""The display's model, fed by the scripted engine's events, without Textual."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from latency_tui.core.events import Progress, Samples
from latency_tui.core.measurement import ConfigResult
from latency_tui.core.specs import RunConfig
from latency_tui.tui.fake import FakeCatalog, FakeEngine
from latency_tui.tui.live import (
    EventBuffer,
    LiveConfig,
    LiveRun,
    busy_host_notices,
    estimate_remaining,
    result_notices,
)
from latency_tui.tui.livestats import histogram_ms, summarize_ns


def plan(preset="fake-sweep", **overrides):
    catalog = FakeCatalog()
    return catalog.build(catalog.load(preset), overrides)


def run_fake(plan_, **options):
    buffer = EventBuffer()
    FakeEngine(plan_, buffer, **options).run()
    run = LiveRun(1, plan_)
    notices = []
    for event in buffer.drain():
        notices.extend(run.apply(event))
    return run, notices


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
        t.join()
    drained.extend(buffer.drain())
    assert len(drained) == 4000
    assert buffer.drain() == []


def test_a_run_of_the_fake_engine_folds_into_the_model():
    run, notices = run_fake(plan(), fail_batch=4, unstable_index=1)
    assert run.state == "finished"
    assert [c.status for c in run.configs.values()] == ["finished", "finished", "failed",
                                                         "finished"]
    first = run.configs[0]
    assert first.count == 4000 == first.samples_ns().size
    assert first.summary() is first.result.latency
    assert first.throughput().inferences_per_s == pytest.approx(800)
    assert first.timeline and all(p.p99_ms > 0 for p in first.timeline)
    assert run.model["name"] == "mlp"
    levels = [n.level for n in notices]
    assert "error" in levels
    # The unstable warm-up is reported once, when it ends, not again with the result.
    assert sum("warm-up" in n.text for n in notices) == 1


def test_live_summary_is_recomputed_only_on_new_samples():
    live = LiveConfig("1:0", 0, RunConfig())
    rng = np.random.default_rng(1)
    live.add_samples((rng.lognormal(0, 0.1, 500) * 1e6).astype(np.int64), 0.5)
    first = live.summary()
    assert live.summary() is first
    live.add_samples((rng.lognormal(0, 0.1, 500) * 1e6).astype(np.int64), 1.0)
    assert live.summary() is not first
    assert live.summary().count == 1000


def test_past_the_cap_figures_come_from_the_log_histogram():
    rng = np.random.default_rng(2)
    exact = LiveConfig("1:0", 0, RunConfig(), cap=10**9)
    capped = LiveConfig("1:0", 0, RunConfig(), cap=1000)
    for i in range(10):
        chunk = (rng.lognormal(0, 0.2, 300) * 1e6).astype(np.int64)
        exact.add_samples(chunk, 0.1 * (i + 1))
        capped.add_samples(chunk, 0.1 * (i + 1))
    assert capped.count == 3000 and not capped.exact and capped.samples_ns().size == 0
    live, truth = capped.summary(), exact.summary()
    assert not live.exact and live.relative_error > 0
    for key in ("p50", "p99"):
        assert live.percentiles[key] == pytest.approx(truth.percentiles[key], rel=0.02)
    drawn = capped.distribution()
    assert drawn.size == 3000 and drawn.weights is not None
    bins = histogram_ms(drawn, bins=20)
    direct = histogram_ms(exact.distribution(), bins=20)
    assert bins.counts.sum() + bins.above == pytest.approx(
        direct.counts.sum() + direct.above, abs=30)


def test_timeline_windows_follow_the_engines_clock():
    live = LiveConfig("1:0", 0, RunConfig(batch_size=4))
    for i in range(10):  # 0.1 s apart: one window of 0.5 s every five events
        live.add_samples(np.full(100, 2_000_000, np.int64), 0.1 * (i + 1))
    assert len(live.timeline) == 2
    point = live.timeline[0]
    assert point.p99_ms == pytest.approx(2.0)
    assert point.inferences_per_s == pytest.approx(1000, rel=0.01)
    assert point.samples_per_s == pytest.approx(4000, rel=0.01)


def test_a_stopped_run_marks_the_rest_skipped():
    plan_ = plan()
    run = LiveRun(1, plan_)
    buffer = EventBuffer()
    engine = FakeEngine(plan_, buffer, pause_at=(1, 2), pause_timeout_s=5)
    thread = threading.Thread(target=engine.run)
    thread.start()
    assert engine.paused.wait(5)
    engine.stop()
    thread.join(5)
    for event in buffer.drain():
        run.apply(event)
    assert run.state == "cancelled"
    assert [c.status for c in run.configs.values()] == ["finished", "cancelled", "skipped",
                                                         "skipped"]


def test_remaining_time_counts_the_current_and_pending_configurations():
    plan_ = plan()  # 4 configurations x 5 s
    run = LiveRun(1, plan_)
    assert estimate_remaining(run) is None
    from latency_tui.core.events import ConfigStarted

    run.apply(ConfigStarted(0, 4, plan_.configs[0]))
    run.apply(Samples(0, np.full(10, 1000, np.int64), 2.0))
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


def test_live_summary_is_the_engines_summary():
    ns = (np.random.default_rng(3).lognormal(0, 0.3, 5000) * 1e6).astype(np.int64)
    live = summarize_ns(ns)
    assert live.count == 5000 and "p99" in live.intervals
    assert summarize_ns(np.empty(0, np.int64)) is None


def test_histogram_range_keeps_the_body_readable_despite_outliers():
    ms = np.concatenate([np.random.default_rng(0).normal(10, 0.5, 10000), [500.0] * 5])
    bins = histogram_ms(ms, bins=20)
    assert bins.high < 20 and bins.above >= 5 and not bins.log
    assert bins.counts.sum() + bins.above + np.count_nonzero(ms < bins.low) == ms.size
    flat = histogram_ms(np.full(10, 3.0), bins=5)
    assert flat.low < 3.0 < flat.high and flat.counts.sum() == 10


def test_a_long_tail_gets_log_spaced_bins():
    rng = np.random.default_rng(0)
    ms = np.concatenate([rng.normal(0.05, 0.002, 9800), rng.uniform(0.2, 0.3, 200)])
    bins = histogram_ms(ms, bins=40)
    assert bins.log
    widths = np.diff(np.log10(bins.centres))
    assert np.allclose(widths, widths[0])
