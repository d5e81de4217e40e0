"""Pilot tests for the last defects a user found (issue 12): limits and large sweeps, the session
browser, copy mode and samples in the edit form, no exception class names, the few-samples
legend, hints from the active keys and the palette's "stop the run first"."""

from __future__ import annotations

import shutil
import threading

from textual.widgets import Input, OptionList, Select

from latency_tui.tui import present
from latency_tui.tui.browser import SessionBrowser
from latency_tui.tui.commands import app_commands
from latency_tui.tui.screens import ConfirmScreen, EditScreen, ValuesPrompt
from latency_tui.tui.widgets.gauges import PercentileGauges
from latency_tui.tui.widgets.header import HeaderBar
from latency_tui.tui.widgets.notices import NoticesPane
from latency_tui.tui.widgets.results import FEW_LEGEND, FEW_MARK, ResultsTable

from .conftest import SIZE, finish_run, wait_described, wait_paused


def notices(app, level=None):
    return [text for lvl, text in app.query_one(NoticesPane).lines_written
            if level is None or lvl == level]


def error_text(app) -> str:
    return str(app.screen.query_one("#error").content)


async def type_into(pilot, text: str) -> None:
    field = pilot.app.screen.query_one(Input)
    field.value = ""
    field.insert_text_at_cursor(text)
    await pilot.pause()


# -- item 3: limits and large sweeps --------------------------------------------------------
async def test_100000_copies_are_refused_in_the_prompt(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await type_into(pilot, "100000")
        await pilot.press("enter")
        assert isinstance(app.screen, ValuesPrompt)  # not accepted
        error = error_text(app)
        assert error.startswith("copies: 100,000 copies") and "at most" in error
        assert "--copies" not in error and "Error" not in error
        await pilot.press("escape")  # workers past their limit are refused too
        await pilot.press("w")
        await type_into(pilot, "100000")
        await pilot.press("enter")
        assert isinstance(app.screen, ValuesPrompt)
        assert error_text(app).startswith("workers per copy: 100,000")
        assert app.starter.handles == []


async def test_a_sweep_of_many_configurations_asks_first(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        sixty = ",".join(str(n) for n in range(1, 61))
        await pilot.press("b")
        await type_into(pilot, sixty)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "60 configurations" in app.screen.question and "about" in app.screen.question
        await pilot.press("n")  # no: nothing runs, the plan is as it was
        await pilot.pause()
        assert app.starter.handles == [] and len(app.plan.configs) == 4
        assert not app.run_active
        await pilot.press("b")
        await type_into(pilot, sixty)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")  # yes: it runs
        await pilot.pause()
        assert len(app.starter.plans) == 1 and len(app.starter.plans[0].configs) == 60
        await finish_run(pilot)


async def test_a_long_plan_from_the_edit_form_asks_first(make_app):
    app = make_app()  # fake-sweep: 4 configurations
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        app.screen.query_one("#field-duration_s", Input).value = "1000"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "4 configurations, about 1 h" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert app.plan.stop.duration_s == 5
        await pilot.press("e")
        app.screen.query_one("#field-duration_s", Input).value = "1000"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.plan.stop.duration_s == 1000
        # A small sweep asks nothing: it runs at once.
        await pilot.press("b")
        await type_into(pilot, "1,2")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # 2 x 1000 s is still past 30 min
        await pilot.press("escape")
        await pilot.pause()
        assert app.starter.handles == []


# -- item 11: the session browser -----------------------------------------------------------
async def test_the_session_browser_lists_sessions_and_any_folder(make_app, tmp_path):
    first = make_app(engine={"fail_batch": 2})
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        saved = first.sessions.path
    other = tmp_path / "elsewhere with a long folder name" / "and deeper still"
    other.mkdir(parents=True)
    copy = other / ("a-session-file-with-a-name-far-too-long-for-one-line-of-the-list"
                    ".json")
    shutil.copy(saved, copy)
    (other / "notes.json").write_text("{}", encoding="utf-8")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("o")
        browser = app.screen
        assert isinstance(browser, SessionBrowser)
        assert browser.query_one(Input).value == str(app.sessions.directory)
        options = browser.query_one(OptionList)
        assert browser.paths == [saved]
        await wait_described(pilot, browser)
        line = str(options.get_option_at_index(0).prompt)
        assert saved.name[:20] in line and "4 configs" in line and "3 ok, 1 failed" in line
        assert first.sessions.session.created.replace("T", " ")[:16] in line
        # A folder typed lists its sessions; every line is one row, whatever its length.
        await type_into(pilot, str(other))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionBrowser)
        assert set(browser.paths) == {copy, other / "notes.json"}
        await wait_described(pilot, browser)
        assert options.option_count == 2
        assert options.virtual_size.height == 2  # no wrapped line
        lines = [str(options.get_option_at_index(i).prompt) for i in range(2)]
        assert any("not a session" in t for t in lines)
        assert "2 session files in" in str(browser.query_one("#where").content)
        # Pick one from the list: it is viewed.
        options.focus()
        options.highlighted = browser.paths.index(copy)
        await pilot.press("enter")
        await pilot.pause()
        assert app.viewing is not None and app.viewing[0] == copy
        # A file typed opens as before; a bad one is refused under the field.
        await pilot.press("o")
        await type_into(pilot, str(other / "notes.json"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SessionBrowser) and error_text(app)


# -- item 11: copy mode and samples in the edit form ----------------------------------------
async def test_copy_mode_and_samples_are_editable_and_shown(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EditScreen)
        mode = screen.query_one("#field-copy_mode", Select)
        assert mode.value == "thread"
        samples = screen.query_one("#field-samples", Input)
        assert samples.value == ""
        samples.value = "1,2"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, EditScreen)
        assert error_text(app).startswith("samples: one whole number")
        samples.value = "500"
        mode.value = "process"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)
        assert app.plan.stop.samples == 500
        assert {c.copy_mode for c in app.plan.configs} == {"process"}
        assert "processes" in str(app.query_one(HeaderBar).content)
        await pilot.press("e")
        assert app.screen.query_one("#field-samples", Input).value == "500"
        assert app.screen.query_one("#field-copy_mode", Select).value == "process"


# -- no exception class names -----------------------------------------------------------------
async def test_no_exception_class_name_in_the_gauges_or_a_display_error(make_app, monkeypatch):
    app = make_app(engine={"fail_batch": 2})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)
        table.focus()
        table.move_cursor(row=table.shown_keys.index(
            next(k for k in table.shown_keys if table.rows_by_key[k].status == "failed")))
        await pilot.pause()
        app.refresh_panes()
        gauges = str(app.query_one(PercentileGauges).render())
        assert "failed: runtime error: out of memory" in gauges
        assert "Error:" not in gauges and "RuntimeError" not in gauges

        def broken(configs):
            raise KeyError("p99")

        monkeypatch.setattr(present, "result_rows", broken)
        app.refresh_panes()
        said = [t for t in notices(app, "error") if "display error" in t]
        assert said == ["display error in the results pane: key error: 'p99'"]


# -- the few-samples legend -----------------------------------------------------------------
async def test_the_legend_shows_only_when_a_visible_figure_is_marked(make_app):
    app = make_app(engine={"chunks": 10, "chunk_size": 400})  # 4000 samples: p99.9 only
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)
        rows = [table.rows_by_key[k] for k in table.shown_keys]
        assert all(r.few_samples == ("p99.9",) for r in rows)  # the warnings reach the table
        assert table.border_title == "results"
        assert not any(str(table.get_cell(k, "p99")).endswith(FEW_MARK)
                       for k in table.shown_keys)
    app = make_app(engine={"chunks": 1, "chunk_size": 400})  # 400 samples: p99 on 4
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)
        key = table.shown_keys[0]
        assert "p99" in table.rows_by_key[key].few_samples
        assert str(table.get_cell(key, "p99")).endswith(FEW_MARK)
        assert FEW_LEGEND in table.border_title


# -- hints name the keys as mapped ------------------------------------------------------------
async def test_the_idle_histogram_names_the_remapped_run_key(make_app):
    app = make_app(keymap={"run": "z"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        message = str(app.query_one("#histogram-message").render())
        assert "press z to run" in message and "press r" not in message


# -- the palette checks like the keys ---------------------------------------------------------
async def test_palette_commands_say_stop_the_run_first(make_app):
    app = make_app(engine={"pause_at": (0, 1)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        commands = {c.title: c for c in app_commands(app)}
        for title in ("Batch-size sweep", "Edit the configuration", "Open a session"):
            commands[title].callback()
            await pilot.pause()
            assert not isinstance(app.screen, (ValuesPrompt, EditScreen, SessionBrowser))
        said = notices(app, "warning")[-3:]
        assert [t.split(" cannot")[0] for t in said] == [
            "a batch-size sweep", "editing the configuration", "opening a session"]
        assert all(t.endswith("stop the run first (r stops it)") for t in said)
        app.starter.last.resume.set()
        await finish_run(pilot)
        commands["Batch-size sweep"].callback()  # after the run, it acts
        await pilot.pause()
        assert isinstance(app.screen, ValuesPrompt)


async def test_the_session_browser_lists_names_at_once_and_reads_the_files_on_a_thread(
        make_app, monkeypatch):
    """Each listed file is parsed to describe it: up to 40 large sessions, or a slow network
    disk, froze the screen while ``o`` opened the browser."""
    from latency_tui.tui import browser as browser_module

    first = make_app()
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        saved = first.sessions.path
    disk, real = threading.Event(), browser_module.describe

    def slow_describe(path):
        assert disk.wait(30), "the test never let the disk answer"
        return real(path)

    monkeypatch.setattr(browser_module, "describe", slow_describe)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("o")
        await pilot.pause()
        browser = app.screen
        assert isinstance(browser, SessionBrowser)  # open although no file could be read yet
        options = browser.query_one(OptionList)
        line = str(options.get_option_at_index(0).prompt)
        assert saved.name[:20] in line and "reading" in line and not browser.described
        await pilot.press("escape")  # the screen answers keys while the files are read
        await pilot.pause()
        assert not isinstance(app.screen, SessionBrowser)
        await pilot.press("o")
        await pilot.pause()
        browser = app.screen
        disk.set()
        await wait_described(pilot, browser)
        line = str(browser.query_one(OptionList).get_option_at_index(0).prompt)
        assert "reading" not in line and "ok" in line
