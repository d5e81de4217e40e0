"""The dialogs as a user meets them: help that scrolls at 80x24, a palette of the app's own
commands, messages in the dialogs' words, prompts prefilled with the current values, empty
items refused, and redraw steps that stay on a fixed ladder with one indicator."""

from __future__ import annotations

import pytest
from textual.containers import VerticalScroll
from textual.widgets import Input

from latency_tui.tui.layout import REFRESH_STEPS, next_refresh
from latency_tui.tui.planstate import FIELD_WORDS, tui_words
from latency_tui.tui.browser import SessionBrowser
from latency_tui.tui.screens import EDIT_FIELDS, EditScreen, HelpScreen, ValuesPrompt

from .conftest import SIZE, finish_run
from .test_app import notices


def error_text(app) -> str:
    return str(app.screen.query_one("#error").content)


async def test_help_scrolls_to_its_last_line_at_80x24(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        scroll = app.screen.query_one(VerticalScroll)
        hint = app.screen.query_one("#close-hint")
        assert scroll.max_scroll_y > 0  # it does not all fit: it scrolls
        assert scroll.region.bottom <= hint.region.y and hint.region.bottom <= 24
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        notes = app.screen.query_one("#notes")
        assert notes.region.bottom == scroll.region.bottom  # the last line is on screen
        assert "its default." in str(notes.content)
        # At 80 columns the number keys follow the visible columns, and help says so.
        assert "Sorting: 1 batch, 2 copies, 3 workers, 4 samples/s" in str(notes.content)
        assert ("1-8", "Sort the results by a column (see below)") in app.screen.keys


async def test_the_palette_offers_only_the_apps_commands(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        commands = list(app.get_system_commands(app.screen))
        titles = [c.title for c in commands]  # not Textual's Keys, Maximize, Screenshot, Theme
        assert titles == ["Run / stop", "Batch-size sweep", "Copies sweep", "Workers sweep",
                          "Pick a preset", "Edit the configuration", "Save the session",
                          "Open a session", "Export the screen", "Pause the display", "Help",
                          "Quit"]
        commands[titles.index("Help")].callback()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("text, expected", [
    ("--copies: 100,000 copies on 2 usable CPUs", "copies: 100,000 copies on 2 usable CPUs"),
    ("--workers: at most 64", "workers per copy: at most 64"),
    ("--warmup-max: must be more than 0", "warm-up max (s): must be more than 0"),
    ("--model 'x:y': no module named 'x'", "model 'x:y': no module named 'x'"),
    ("UserError: session x.json: not writable", "session x.json: not writable"),
    ("cannot load: latency_tui.core.errors.UserError: no", "cannot load: no"),
    ("engine failed: RuntimeError: no engine today", "engine failed: runtime error: no engine today"),
    ("batch 4: failed: OSError: disk full", "batch 4: failed: OS error: disk full"),
    ("import failed: torch.cuda.OutOfMemoryError: CUDA", "import failed: out of memory error: CUDA"),
    ("/data/--copies/ValueError.py: no such file", "/data/--copies/ValueError.py: no such file"),
])
def test_messages_in_the_tuis_words(text, expected):
    assert tui_words(text) == expected


def test_the_flags_read_as_the_edit_forms_labels():
    labels = dict((key, label) for key, label, _ in EDIT_FIELDS)
    assert FIELD_WORDS["--batch-sizes"] == labels["batch_sizes"]
    assert FIELD_WORDS["--copies"] == labels["copies"]
    assert FIELD_WORDS["--workers"] == labels["workers"]
    assert FIELD_WORDS["--duration"] == labels["duration_s"]
    assert FIELD_WORDS["--warmup-max"] == labels["warmup_max_s"]


async def test_dialog_messages_name_the_dialogs_fields(make_app):
    app = make_app("cpu-mlp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        field = app.screen.query_one(Input)
        field.value = "100000"
        await pilot.press("enter")
        assert isinstance(app.screen, ValuesPrompt)
        assert error_text(app).startswith("copies: 100,000 copies")
        await pilot.press("escape")
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        app.screen.query_one("#field-duration_s", Input).value = "1e9"
        await pilot.press("ctrl+s")
        assert error_text(app).startswith("duration (s): must be more than 0 and at most")
        app.screen.query_one("#field-duration_s", Input).value = "10"
        app.screen.query_one("#field-model", Input).value = "nomodule_here:Model"
        await pilot.press("ctrl+s")
        assert error_text(app).startswith("model 'nomodule_here:Model': ")
        for text in [error_text(app)] + notices(app):
            assert "--" not in text and "Error" not in text


async def test_every_prompt_is_prefilled_with_the_current_values(make_app, tmp_path):
    app = make_app()  # fake-sweep: batch 1,2,4,8, one copy, one worker
    async with app.run_test(size=SIZE) as pilot:
        for key, current in (("b", "1,2,4,8"), ("c", "1"), ("w", "1")):
            await pilot.press(key)
            assert isinstance(app.screen, ValuesPrompt)
            assert app.screen.query_one(Input).value == current, key
            assert f"now {current}" in str(app.screen.query(".hint").first().content)
            await pilot.press("escape")
        await pilot.press("r")
        await finish_run(pilot)
        saved = app.sessions.path
        app.open_path(str(saved))
        await pilot.pause()
        await pilot.press("o")  # viewing a session: its path
        assert isinstance(app.screen, SessionBrowser)
        assert app.screen.query_one(Input).value == str(saved)


@pytest.mark.parametrize("text", ["1,,2", "1,2,"])
async def test_an_empty_item_in_a_sweep_is_refused(make_app, text):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        app.screen.query_one(Input).value = text
        await pilot.press("enter")
        assert isinstance(app.screen, ValuesPrompt)  # not accepted
        assert "batch sizes: " in error_text(app) and "empty item" in error_text(app)
        assert app.starter.handles == []


def test_refresh_steps_are_fixed():
    assert next_refresh(0.5, faster=True) == 0.25
    assert next_refresh(0.25, faster=True) == 0.25
    assert next_refresh(0.5, faster=False) == 1.0
    assert next_refresh(5.0, faster=False) == 5.0
    assert next_refresh(0.3125, faster=False) == 0.5  # an odd value joins the ladder
    assert next_refresh(0.3125, faster=True) == 0.25


async def test_plus_and_minus_step_the_redraw_with_one_indicator(make_app):
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        before = list(notices(app))
        seen = []
        for key in ("plus", "plus", "minus", "minus", "minus", "minus", "minus", "equals_sign"):
            await pilot.press(key)
            seen.append(app.refresh_s)
        assert seen == [0.25, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0, 2.0]
        assert set(seen) <= set(REFRESH_STEPS)
        assert notices(app) == before  # no notice per key press
        await pilot.pause()
        await pilot.pause()
        toasts = list(app.screen.query("Toast"))
        assert len(toasts) == 1  # one indicator, the latest
        assert "2 s" in str(toasts[0].render())
