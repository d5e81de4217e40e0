"""Pilot tests: every key of the app. Most drive the real engine in a thread on the fake device
(the real event protocol, the real presets and plan builder); those that look at a run at an
exact point use the scripted run, whose events obey the same protocol."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.widgets import DataTable, Input, OptionList, Select
from textual.widgets.data_table import ColumnKey

from latency_tui.core.api import load_session
from latency_tui.tui.browser import SessionBrowser
from latency_tui.tui.screens import (
    ConfirmScreen,
    EditScreen,
    HelpScreen,
    PathPrompt,
    PresetPicker,
    ValuesPrompt,
)
from latency_tui.tui.widgets.header import HeaderBar
from latency_tui.tui.widgets.histogram import LatencyHistogram
from latency_tui.tui.widgets.notices import NoticesPane
from latency_tui.tui.widgets.results import ResultsTable

from .conftest import SIZE, finish_run, wait_for, wait_paused


def header(app) -> str:
    return str(app.query_one(HeaderBar).content)


def notices(app, level=None):
    lines = app.query_one(NoticesPane).lines_written
    return [text for lvl, text in lines if level is None or lvl == level]


def statuses(app):
    table = app.query_one(ResultsTable)
    return [table.rows_by_key[key].status for key in table.shown_keys]


async def type_into(pilot, text: str) -> None:
    """Clear the prompt's field and type ``text``; a long path is pasted rather than typed
    key by key (each key press costs a screen refresh)."""
    field = pilot.app.screen.query_one(Input)
    field.value = ""
    if len(text) > 12:
        field.insert_text_at_cursor(text)
        await pilot.pause()
    else:
        await pilot.press(*text)


def measuring(app) -> bool:
    live = app.live_run.current_config() if app.live_run else None
    return live is not None and live.phase == "measuring" and live.count > 0


async def test_opens_idle_on_the_preset_with_every_pane(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = header(app)
        assert "preset fake-sweep" in text and "IDLE" in text
        assert "4 configurations x 5 s; r runs it" in text
        for pane in ("#histogram", "#timeline", "#gauges", "#utilisation", "#results",
                     "#notices"):
            assert app.query_one(pane).display
        assert "press r to run" in app.query_one(LatencyHistogram).message
        assert "utilisation" in app.query_one("#utilisation").border_title
        assert app.starter.handles == []  # nothing runs until asked


async def test_r_runs_the_sweep_on_the_real_engine_and_saves_the_session(make_app):
    app = make_app("quick", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        assert statuses(app) == ["finished", "finished", "failed"]
        # The header never claims more than happened: one configuration failed.
        assert "FINISHED with errors" in header(app) and "2 ok, 1 failed of 3" in header(app)
        # A failed configuration does not stop the sweep, and says why.
        assert any("batch 4, 1 x 1: failed: runtime error: out of memory at batch 4" in t
                   for t in notices(app, "error"))
        # Saved after every configuration, in the data directory.
        path = app.sessions.path
        assert path is not None and path.parent.name == "sessions" and path.exists()
        saved = load_session(path)
        assert [r.status for r in saved.results] == ["finished", "finished", "failed"]
        assert saved.results[2].error_kind == "out_of_memory"
        assert "Traceback" in saved.results[2].traceback
        assert saved.preset["name"] == "quick"
        # The panes show the last finished configuration, from the engine's own streams.
        assert app.query_one("#gauges").border_subtitle == "batch 2, 1 x 1 · finished"
        assert app.query_one(LatencyHistogram).has_class("-plot")


async def test_panes_move_while_a_configuration_runs(make_app):
    app = make_app(engine={"pause_at": (1, 4)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        text = header(app)
        assert "RUNNING" in text and "config 2/4" in text and "measuring 2.5 / 5 s" in text
        assert "~00:12 left" in text
        assert statuses(app)[:3] == ["finished", "measuring 50%", "pending"]
        assert "live" in app.query_one("#gauges").border_title
        # The first configuration's 5 seconds and the second's 2 complete ones.
        assert app.query_one("#timeline").border_subtitle == "7 seconds"
        app.starter.last.resume.set()
        await finish_run(pilot)
        assert "FINISHED" in header(app)


async def test_r_again_stops_the_real_run_within_the_configuration(make_app):
    app = make_app("slow", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: measuring(app))
        await pilot.press("r")
        asked = asyncio.get_running_loop().time()
        assert any(t.startswith("stopping:") for t in notices(app, "info"))
        await finish_run(pilot)
        assert asyncio.get_running_loop().time() - asked < 2.0
        assert app.starter.last.stop_requested
        assert statuses(app) == ["cancelled", "skipped", "skipped"]
        assert "STOPPED" in header(app)
        assert [r.status for r in load_session(app.sessions.path).results] == ["cancelled"]


async def test_plan_keys_are_disabled_while_running(make_app):
    app = make_app(engine={"pause_at": (0, 1)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        for key in "bcwpeo":
            await pilot.press(key)
            assert not isinstance(app.screen, (ValuesPrompt, PresetPicker, EditScreen,
                                               PathPrompt, SessionBrowser))
        assert app.check_action("sweep", ("batch_sizes",)) is None
        app.starter.last.resume.set()
        await finish_run(pilot)
        assert app.check_action("sweep", ("batch_sizes",)) is True


async def test_b_asks_for_batch_sizes_validates_and_runs_the_sweep(make_app):
    app = make_app("quick", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        assert isinstance(app.screen, ValuesPrompt)
        assert app.screen.query_one(Input).value == "1,2,4"  # the preset's own
        await type_into(pilot, "1,x")
        await pilot.press("enter")
        assert isinstance(app.screen, ValuesPrompt)
        assert "'x' is not an integer" in str(app.screen.query_one("#error").content)
        await type_into(pilot, "1,8")
        await pilot.press("enter")
        await finish_run(pilot)
        assert [c.batch_size for c in app.starter.plans[-1].configs] == [1, 8]
        assert statuses(app) == ["finished", "finished"]


async def test_c_and_w_sweep_copies_and_workers(make_app):
    app = make_app("quick", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await type_into(pilot, "1")
        await pilot.press("enter")
        await finish_run(pilot)
        await pilot.press("c")
        assert app.screen.query_one(Input).value == "1"  # the current copies, as every prompt
        await type_into(pilot, "1,2")
        await pilot.press("enter")
        await finish_run(pilot)
        assert [c.copies for c in app.starter.plans[-1].configs] == [1, 2]
        await pilot.press("w")
        await type_into(pilot, "2")
        await pilot.press("enter")
        await finish_run(pilot)
        plan = app.starter.plans[-1]
        assert [(c.copies, c.workers_per_copy) for c in plan.configs] == [(1, 2), (2, 2)]
        # Same model and stop rule: one session, one table for every sweep.
        assert len(app.query_one(ResultsTable).shown_keys) == 5
        assert len(load_session(app.sessions.path).results) == 5
        assert statuses(app) == ["finished"] * 5


async def test_escape_cancels_a_prompt(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await pilot.press("escape")
        assert not isinstance(app.screen, ValuesPrompt)
        assert app.starter.handles == []


async def test_p_picks_another_preset(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, PresetPicker)
        options = app.screen.query_one(OptionList)
        names = [str(options.get_option_at_index(i).id) for i in range(options.option_count)]
        assert options.highlighted == names.index("fake-sweep")  # the current preset
        await pilot.press(*["up"] * (names.index("fake-sweep") - names.index("cpu-bert")), "enter")
        assert "preset cpu-bert" in header(app) and "copies 2 x workers 2" in header(app)
        assert app.plan.name == "cpu-bert"
        await pilot.press("p")
        await pilot.press("tab")
        await type_into(pilot, "nope.toml")
        await pilot.press("enter")
        assert any("preset file nope.toml: no such file" in t for t in notices(app, "error"))


async def test_e_edits_the_configuration_with_validation(make_app):
    app = make_app("cpu-mlp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        duration = app.screen.query_one("#field-duration_s", Input)
        assert duration.value == "10"
        duration.value = "-1"
        await pilot.press("ctrl+s")
        assert "must be more than 0" in str(app.screen.query_one("#error").content)
        app.screen.query_one("#field-copies", Input).value = "0"
        duration.value = "3"
        await pilot.press("ctrl+s")
        assert "copies" in str(app.screen.query_one("#error").content)
        assert app.screen.query_one("#field-device", Select).value == "cpu"
        app.screen.query_one("#field-copies", Input).value = "1"
        app.screen.query_one("#field-batch_sizes", Input).value = "2, 4"
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, EditScreen)
        assert app.overrides == {"batch_sizes": (2, 4), "duration_s": 3.0}
        assert app.plan.stop.duration_s == 3.0
        assert "batch 2,4" in header(app)


async def test_s_saves_the_session_where_asked(make_app, tmp_path):
    app = make_app("quick", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        assert not isinstance(app.screen, PathPrompt)
        assert notices(app, "warning")[-1].startswith("nothing to save yet")
        await pilot.press("r")
        await finish_run(pilot)
        await pilot.press("s")
        assert isinstance(app.screen, PathPrompt)
        assert app.screen.query_one(Input).value == str(app.sessions.path)
        await type_into(pilot, str(tmp_path / "missing" / "x.json"))
        await pilot.press("enter")
        assert "does not exist" in str(app.screen.query_one("#error").content)
        await type_into(pilot, "/dev/null")
        await pilot.press("enter")
        assert "not a regular file" in str(app.screen.query_one("#error").content)
        target = tmp_path / "mine.json"
        await type_into(pilot, str(target))
        await pilot.press("enter")
        assert load_session(target).results[0].status == "finished"
        assert app.sessions.path == target  # later configurations are saved there too


async def test_o_opens_a_saved_session_read_only(make_app, tmp_path):
    first = make_app(engine={"fail_batch": 2})
    async with first.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        saved = first.sessions.path
    app = make_app("quick", real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("o")
        assert isinstance(app.screen, SessionBrowser)
        assert app.screen.paths[0] == saved  # the newest session first in the list
        await type_into(pilot, str(tmp_path / "nothing.json"))
        await pilot.press("enter")
        assert "No such file" in str(app.screen.query_one("#error").content)
        await type_into(pilot, str(saved))
        await pilot.press("enter")
        await pilot.pause()
        assert "VIEWING" in header(app) and saved.name in header(app)
        assert statuses(app) == ["finished", "failed", "finished", "finished"]
        assert "viewing a saved session" in str(app.query_one("#utilisation").render())
        assert "saved sessions keep no samples" in app.query_one("#histogram").border_subtitle
        # The saved timelines: 5 seconds for each of the three configurations that ran.
        assert app.query_one("#timeline").border_subtitle == "15 seconds"
        table = app.query_one(ResultsTable)
        table.focus()
        await pilot.press("down", "down")
        assert app.query_one("#gauges").border_subtitle == "batch 4, 1 x 1 · finished"
        # r leaves the view and runs the current preset.
        await pilot.press("r")
        await finish_run(pilot)
        assert "VIEWING" not in header(app) and "preset quick" in header(app)


async def test_space_pauses_the_display_not_the_run(make_app):
    app = make_app(engine={"pause_at": (0, 2)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        before = app.query_one("#gauges").border_subtitle
        await pilot.press("space")
        assert "DISPLAY PAUSED" in header(app)
        app.starter.last.resume.set()
        await finish_run(pilot)
        assert app.query_one("#gauges").border_subtitle == before  # frozen
        assert app.live_run.state == "finished"  # but the run went on
        await pilot.press("space")
        assert "DISPLAY PAUSED" not in header(app)
        assert app.query_one("#gauges").border_subtitle == "batch 8, 1 x 1 · finished"


async def test_question_mark_shows_every_key_as_mapped(make_app):
    app = make_app(keymap={"run": "z"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = dict((d, k) for k, d in app.screen.keys)
        assert keys["Run/Stop"] == "z"
        for description in ("Batch sweep", "Copies sweep", "Workers sweep", "Preset", "Edit",
                            "Save", "Open", "Pause", "Help", "Quit"):
            assert description in keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("r")  # remapped away
        assert app.starter.handles == []
        await pilot.press("z")
        await finish_run(pilot)
        assert len(app.starter.handles) == 1


async def test_q_quits_at_once_when_idle(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def wait_exit(app, timeout=30.0):
    """Wait until the app has called exit; say where it stands if it never does."""
    for _ in range(int(timeout / 0.02)):
        if app._exit_renderables is not None or not app.is_running:
            return
        await asyncio.sleep(0.02)
    handle = app.runs.handle
    raise AssertionError(
        f"the app did not exit in {timeout:g} s: screen {type(app.screen).__name__}, "
        f"quitting {app.quitting}, run active {app.run_active}, "
        f"engine done {None if handle is None else handle.done}")


async def test_q_while_running_asks_then_stops_and_saves(make_app):
    app = make_app(engine={"pause_at": (1, 3)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.run_active and app.starter.last.stop_calls == 0
        await pilot.press("q")
        await pilot.press("y")
        await wait_exit(app)
    assert app.starter.last.stop_calls >= 1
    assert app.return_code == 0
    statuses_saved = [r.status for r in load_session(app.sessions.path).results]
    assert statuses_saved == ["finished", "cancelled"]


async def test_q_twice_while_a_real_run_hangs_quits_at_once(make_app, write_preset):
    path = write_preset("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        duration_s = 30
        [device]
        mode = "sleep"
        latency_ms = 1.0
        hang_after = 60
        [warmup]
        min_iterations = 3
        max_iterations = 20
        window = 5
    """, name="hangs.toml")
    app = make_app(str(path), real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: measuring(app))
        await pilot.press("q", "y")
        await pilot.pause()
        began = asyncio.get_running_loop().time()
        await pilot.press("q")
        await wait_exit(app)
        assert asyncio.get_running_loop().time() - began < 2.0
    assert app.return_code == 0


async def test_number_keys_and_header_clicks_sort_the_results(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)

        def p99s():
            return [table.rows_by_key[k].p99 for k in table.shown_keys]

        await pilot.press("9")  # p99, low first
        assert p99s() == sorted(p99s())
        await pilot.press("9")
        assert p99s() == sorted(p99s(), reverse=True)
        assert str(table.columns["p99"].label).endswith("▼")
        await pilot.press("1")  # back to arrival order
        assert [table.rows_by_key[k].batch for k in table.shown_keys] == [1, 2, 4, 8]
        table.post_message(DataTable.HeaderSelected(table, ColumnKey("samples_s"), 5,
                                                    Text("samples/s")))
        await pilot.pause()
        rates = [table.rows_by_key[k].samples_s for k in table.shown_keys]
        assert rates == sorted(rates, reverse=True)  # throughput: high first


async def test_small_terminals(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("narrow") and app.has_class("short")
        assert not app.query_one("#utilisation").display or \
            app.query_one("#utilisation").region.width == 0
        assert app.query_one("#histogram").region.height >= 7
        assert app.query_one("#results").region.height >= 5
        await pilot.resize_terminal(70, 20)
        await pilot.pause()
        assert app.has_class("too-small")
        assert "Terminal too small: 70x20" in str(app.query_one("#too-small").content)
        await pilot.press("r")  # keys still work
        await finish_run(pilot)
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert not app.has_class("too-small") and not app.has_class("narrow")
        assert statuses(app) == ["finished"] * 4


async def test_command_palette_offers_presets_and_actions(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Run / stop", "Batch-size sweep", "Pick a preset", "Save the session"} <= \
            set(titles)
        from latency_tui.tui.commands import PresetCommands

        provider = PresetCommands(app.screen)
        hits = [hit async for hit in provider.search("cpu-bert")]
        assert hits and "cpu-bert" in str(hits[0].match_display)
        hits[0].command()
        await pilot.pause()
        assert app.plan.name == "cpu-bert"


async def test_a_run_that_cannot_start_is_a_notice_not_a_crash(make_app):
    app = make_app()

    def broken(plan, sink):
        raise RuntimeError("no engine today")

    app.runs.start_run = broken
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert "FAILED" in header(app)
        assert any("engine failed: runtime error: no engine today" in t
                   for t in notices(app, "error"))
        assert app.check_action("sweep", ("batch_sizes",)) is True


async def test_an_engine_that_dies_mid_run_is_a_notice(make_app):
    from latency_tui.core.isolation import EngineProcessError

    app = make_app(engine={"pause_at": (0, 1)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        handle = app.starter.last
        handle.error = EngineProcessError("the engine's process ended with exit code -9")
        handle._done.set()  # as the relay does when the process is gone
        await finish_run(pilot)
        assert "FAILED" in header(app)
        assert any("exit code -9" in t for t in notices(app, "error"))
        handle.resume.set()


async def test_markup_and_escapes_from_presets_and_models_are_shown_as_text(make_app,
                                                                            write_preset):
    path = write_preset("""
        name = "[/x] odd \\u001b[2J"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        duration_s = 0.2
        [device]
        handler = "workloads:raises_markup"
    """, name="odd.toml")
    app = make_app(str(path), real=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        assert statuses(app) == ["failed", "failed"], notices(app)  # the sweep went on
        errors = [t for t in notices(app, "error") if "cannot open" in t]
        assert len(errors) == 2 and "[/bold] cannot open [/data]" in errors[0]
        assert "[/x] odd \\x1b[2J" in header(app)  # the name as text, its escape made visible
        screen = app.export_screenshot()
        assert "\x1b[2J" not in screen and "\x1b[31m" not in screen
