"""A screen that tells the truth: the header's state and counts never claim more than happened
and always name what ``r`` runs; each run has an id on every row, in the table and the file;
a failure's traceback is in engine.log and the session, and the notice says where; keys that
cannot act say why; pausing freezes the header with the panes; notice counts are per run; the
copy mode and a samples stop rule are on screen."""

from __future__ import annotations

import asyncio
import json

from latency_tui.core.api import load_session
from latency_tui.tui.browser import SessionBrowser
from latency_tui.tui.screens import EditScreen, PathPrompt, PresetPicker, ValuesPrompt
from latency_tui.tui.widgets.notices import NoticesPane
from latency_tui.tui.widgets.results import ResultsTable

from .conftest import SIZE, finish_run, wait_paused
from .test_app import header, notices, statuses, type_into


async def sweep(pilot, key: str, values: str) -> None:
    await pilot.press(key)
    await type_into(pilot, values)
    await pilot.press("enter")
    await finish_run(pilot)


async def test_a_run_whose_every_configuration_failed_reads_failed(make_app):
    app = make_app("quick", real=True)  # batch 4 fails
    async with app.run_test(size=SIZE) as pilot:
        await sweep(pilot, "b", "4")
        assert statuses(app) == ["failed"]
        text = header(app)
        assert "FAILED" in text and "FINISHED" not in text and "0 ok, 1 failed of 1" in text


async def test_a_stopped_run_counts_what_finished_not_what_ended(make_app):
    app = make_app(engine={"pause_at": (1, 3)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        text = header(app)
        assert "STOPPED" in text and "1 ok, 1 cancelled, 2 skipped of 4" in text
        assert "2/4" not in text


async def test_viewing_a_session_the_header_still_names_what_r_runs(make_app, tmp_path):
    first = make_app(session_path=str(tmp_path / "recorded.json"))  # fake-sweep
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
    app = make_app("quick", open_session=str(tmp_path / "recorded.json"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        line1, line2 = header(app).splitlines()
        assert "preset quick" in line1 and "fake-sweep" not in line1
        assert "VIEWING" in line2 and "recorded.json: preset fake-sweep" in line2
        assert "r runs preset quick" in line2
        await pilot.press("r")
        await finish_run(pilot)
        assert app.starter.plans[-1].name == "quick"


async def test_each_run_has_an_id_on_its_rows_in_the_table_and_the_file(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)
        assert [str(table.get_cell(k, "number")).strip() for k in table.shown_keys] == \
            ["1", "2", "3", "4"]  # one run: plain numbers
        await sweep(pilot, "b", "1,2")
        assert [str(table.get_cell(k, "number")).strip() for k in table.shown_keys] == \
            ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2"]
        session = load_session(app.sessions.path)
        assert [run["id"] for run in session.runs] == [1, 2]
        assert [run["preset"]["run"]["batch_sizes"] for run in session.runs] == [
            [1, 2, 4, 8], [1, 2]]
        assert [session.run_of(r) for r in session.results] == [1, 1, 1, 1, 2, 2]
        await pilot.press("o")
        await type_into(pilot, str(app.sessions.path))
        await pilot.press("enter")
        await pilot.pause()
        assert [str(table.get_cell(k, "number")).strip() for k in table.shown_keys][-2:] == \
            ["2.1", "2.2"]  # a saved session shows them too


async def test_a_failure_traceback_is_in_engine_log_the_session_and_the_notice_says_where(
        make_app):
    app = make_app("quick")
    app.runs.start_run = app._start_in_process  # the app's own engine process and its log
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await type_into(pilot, "4")
        await pilot.press("enter")
        for _ in range(600):
            if app.runs.handle is not None:
                break
            await asyncio.sleep(0.02)
        await finish_run(pilot, timeout=60)
        log = app._data_root() / "engine.log"
        text = log.read_text()
        assert "configuration 1 (batch 4, 1 x 1) failed" in text
        assert "Traceback (most recent call last)" in text and "fails_at_batch_4" in text
        (result,) = load_session(app.sessions.path).results
        assert "Traceback" in result.traceback and "fails_at_batch_4" in result.traceback
        (error,) = [t for t in notices(app, "error") if "failed" in t]
        assert "(at workloads.py:" in error
        assert f"traceback in {log} and the session file)" in error


async def test_keys_that_cannot_act_during_a_run_say_why(make_app):
    app = make_app(engine={"pause_at": (0, 1)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        for key in "bcwepo":
            await pilot.press(key)
            assert not isinstance(app.screen, (ValuesPrompt, PresetPicker, EditScreen,
                                               PathPrompt, SessionBrowser))
        said = notices(app, "warning")[-6:]
        assert [t.split(" cannot")[0] for t in said] == [
            "a batch-size sweep", "a copies sweep", "a workers sweep",
            "editing the configuration", "picking a preset", "opening a session"]
        assert all(t.endswith("stop the run first (r stops it)") for t in said)
        app.starter.last.resume.set()
        await finish_run(pilot)
        await pilot.press("b")
        assert isinstance(app.screen, ValuesPrompt)  # after the run it acts


async def test_pausing_freezes_the_header_with_the_panes_and_says_so(make_app):
    app = make_app(engine={"pause_at": (0, 2)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("space")
        frozen = header(app).splitlines()
        assert "RUNNING" in frozen[1] and "DISPLAY PAUSED" in frozen[1]
        app.starter.last.resume.set()
        await finish_run(pilot)
        line1, line2 = header(app).splitlines()
        assert line1 == frozen[0]
        assert line2.startswith(frozen[1].split("  DISPLAY")[0])  # state, phase, time: frozen
        assert "the run is FINISHED now" in line2  # and the truth beside them
        await pilot.press("space")
        assert "FINISHED" in header(app) and "PAUSED" not in header(app)


async def test_notice_counts_are_per_run(make_app):
    app = make_app(engine={"fail_batch": 2})
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(NoticesPane)
        await pilot.press("r")
        await finish_run(pilot)
        assert pane.border_subtitle.startswith("run 1: 1 error,")
        await sweep(pilot, "b", "1")
        assert pane.border_subtitle.startswith("run 2: 0 errors,")
        assert len(notices(app, "error")) == 1  # the first run's line is still there


async def test_the_header_shows_the_copy_mode_and_a_samples_stop_rule(make_app, write_preset):
    path = write_preset("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        copy_mode = "process"
        copies = [2]
        samples = 8000
        [device]
        latency_ms = 1.0
    """, name="by-samples.toml")
    app = make_app(str(path), engine={"pause_at": (0, 4)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "copies 2 x workers 1 in processes" in header(app)
        assert "1 configuration x 8000 samples" in header(app)
        await pilot.press("r")
        await wait_paused(pilot)
        assert "measuring 4,000 / 8,000 samples" in header(app)
        app.starter.last.resume.set()
        await finish_run(pilot)
        saved = json.loads(app.sessions.path.read_text())
        assert saved["results"][0]["config"]["copy_mode"] == "process"
