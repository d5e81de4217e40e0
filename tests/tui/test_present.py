"""What the panes are told: header words, gauges, rows and the edit form's changes."""

from __future__ import annotations

from latency_tui.tui.live import EventBuffer, LiveRun
from latency_tui.tui.present import (
    changed_fields,
    edit_values,
    gauge_data,
    live_header,
    plan_summary,
    result_rows,
)
from latency_tui.tui.widgets.gauges import render_gauges
from latency_tui.tui.widgets.header import render_header


from .scripted import ScriptedRun
from .test_live import sweep_plan


def scripted(plan, **options):
    buffer = EventBuffer()
    assert ScriptedRun(plan, buffer, **options).wait(30)
    return buffer.drain()


def test_idle_header_describes_the_whole_sweep():
    plan = sweep_plan()
    info = live_header("fake-sweep", plan, None, None, paused=False)
    assert (info.batch, info.parallel, info.state) == ("1,2,4,8", "1 x 1", "IDLE")
    assert info.note == "4 configurations x 5 s; r runs it"
    text = render_header(info).plain
    assert "preset fake-sweep" in text and "IDLE" in text


def test_header_during_and_after_a_run():
    plan = sweep_plan()
    events = scripted(plan)
    run = LiveRun(1, plan)
    for event in events[:20]:  # part-way into the first configuration
        run.apply(event)
    info = live_header("fake-sweep", plan, run, 3.0, paused=True)
    assert info.state == "RUNNING" and info.position == "config 1/4"
    assert info.phase.startswith("measuring") and info.elapsed == "00:03"
    assert "PAUSED" in info.note and info.remaining.startswith("~")
    for event in events[20:]:
        run.apply(event)
    info = live_header("fake-sweep", plan, run, 21.0, paused=False)
    assert (info.state, info.position, info.remaining) == ("FINISHED", "4/4 configs", "")
    assert "mlp (1.2M params" in info.model


def test_rows_and_gauges_of_a_finished_sweep():
    plan = sweep_plan()
    run = LiveRun(1, plan)
    for event in scripted(plan, fail_batch=2):
        run.apply(event)
    rows = result_rows(run.configs.values())
    assert [r.status for r in rows] == ["finished", "failed", "finished", "finished"]
    assert rows[1].p99 is None and rows[2].p99 > rows[0].p99
    data = gauge_data(run.configs[1])
    shown = render_gauges(data).plain
    assert data.error and "failed: runtime error: out of memory" in shown
    assert "Error" not in shown  # no exception class name
    data = gauge_data(run.configs[0])
    assert data.final and data.samples == 4000 and data.cold_start_ms is not None


def test_edit_form_reports_only_changed_fields():
    plan = sweep_plan()
    shown = edit_values(plan)
    assert shown["batch_sizes"] == "1,2,4,8" and shown["duration_s"] == "5"
    form = {"model": "builtin:noop", "device": "fake", "batch_sizes": (1, 2, 4, 8),
            "copies": (1, 2), "workers": (1,), "duration_s": 5.0, "warmup_max_s": 2.0}
    assert changed_fields(form, shown) == {"copies": (1, 2), "warmup_max_s": 2.0}


def test_plan_summary_words():
    assert plan_summary(None) == "no plan"
    assert plan_summary(sweep_plan()) == "4 configurations x 5 s"


def test_the_gauges_say_how_close_early_stop_is():
    from latency_tui.core.events import ConfigStarted, PhaseChanged, Progress

    plan = sweep_plan()
    run = LiveRun(1, plan)
    run.apply(ConfigStarted(index=0, total=4, config=plan.configs[0]))
    run.apply(PhaseChanged(0, "measuring"))
    run.apply(Progress(index=0, elapsed_s=1.0, samples=900, fraction=0.4))
    assert gauge_data(run.configs[0]).status.endswith("measuring 40%")  # no early stop asked
    run.apply(Progress(index=0, elapsed_s=1.5, samples=1500, fraction=0.5, early_stop=None,
                       early_stop_target=5.0))
    assert gauge_data(run.configs[0]).status.endswith("p99 interval not yet → 5%")
    run.apply(Progress(index=0, elapsed_s=2.0, samples=2000, fraction=0.7, early_stop=7.25,
                       early_stop_target=5.0))
    assert gauge_data(run.configs[0]).status.endswith("measuring 70% · p99 ±7.2% → 5%")
