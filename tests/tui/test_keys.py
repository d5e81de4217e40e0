"""keys.toml checked at start: a mistake is a notice naming the file, the line and the problem;
a key another action or Textual already answers to is refused and the action keeps its
default; hints, help and the palette name the keys as mapped."""

from __future__ import annotations

import pytest

from latency_tui.tui.keys import check_keymap, is_key_name, localize
from latency_tui.tui.prefs import load_keymap
from latency_tui.tui.screens import HelpScreen

from .conftest import SIZE
from .test_app import header, notices


def refused(entries):
    accepted, problems = check_keymap(entries)
    return accepted, dict(problems)


@pytest.mark.parametrize("key", ["x", "R", "5", "f5", "ctrl+x", "ctrl+shift+x", "question_mark",
                                 "plus", "space", "home", "alt+enter"])
def test_key_names(key):
    assert is_key_name(key)


@pytest.mark.parametrize("key", ["nope", "Ctrl+x", "ctrl+", "ctrl+ctrl+x", "hyper-x", "f99"])
def test_not_key_names(key):
    assert not is_key_name(key)


def test_a_key_of_another_action_is_refused_and_the_default_kept():
    accepted, problems = refused({"run": "q"})
    assert accepted == {}
    assert problems["run"] == 'run = "q": "q" is already Quit\'s key (quit)'


@pytest.mark.parametrize("value, why", [
    (5, "run = 5: not a string; write keys in quotes"),
    ("5", 'run = "5": "5" sorts the results (column 5)'),
    ("nope", 'run = "nope": "nope" is not a key name'),
    ("", 'run = "": an empty key name'),
    ("x,,y", 'run = "x,,y": an empty key name'),
    ("ctrl+p", 'run = "ctrl+p": "ctrl+p" is the command palette'),
    ("tab", 'run = "tab": "tab" is Textual\'s focus next'),
    ("ctrl+i", 'run = "ctrl+i": "ctrl+i" is Textual\'s focus next'),  # what tab sends
    ("up", 'run = "up": "up" is the results table\'s cursor up'),
    ("escape", 'run = "escape": "escape" is the key that closes every dialog'),
    ("?", 'run = "?": "question_mark" is already Help\'s key (help)'),
])
def test_refused_values_say_why(value, why):
    accepted, problems = refused({"run": value})
    assert accepted == {}
    assert problems["run"].startswith(why)


def test_unknown_ids_and_the_sort_keys():
    accepted, problems = refused({"runn": "x", "zzz": "x", "sort_3": "x"})
    assert accepted == {}
    assert problems["runn"] == 'unknown binding id "runn" (did you mean "run"?)'
    assert problems["zzz"].startswith('unknown binding id "zzz" (known: run, sweep_batch')
    assert problems["sort_3"] == "the sort keys 0-9 cannot be remapped"


def test_sound_remappings_pass():
    assert check_keymap({"quit": "q,ctrl+q"})[0] == {"quit": "q,ctrl+q"}  # ctrl+q quits anyway
    assert check_keymap({"run": "q", "quit": "r"})[0] == {"run": "q", "quit": "r"}  # a swap
    assert check_keymap({"help": "h", "run": "?"})[0] == {"help": "h", "run": "question_mark"}
    assert check_keymap({"run": "R", "faster": "ctrl+up"})[0] == \
        {"run": "R", "faster": "ctrl+up"}


def test_between_two_remappings_the_first_keeps_the_key():
    accepted, problems = refused({"run": "z", "save": "z"})
    assert accepted == {"run": "z"}
    assert problems["save"] == 'save = "z": "z" is already Run/Stop\'s key (run)'


def test_a_refusal_that_gives_a_default_back_is_checked_again():
    # quit wants r, which run gives up only if its own remapping (to ctrl+p) stands: it does not.
    accepted, problems = refused({"run": "ctrl+p", "quit": "r"})
    assert accepted == {}
    assert set(problems) == {"run", "quit"}


class FakeApp:
    """Enough of the app for ``localize``: the keymap in force and the footer's key display."""

    def __init__(self, keymap):
        self.keymap = keymap

    @staticmethod
    def get_key_display(binding):
        from textual.app import App

        return App.get_key_display(App(), binding)


@pytest.mark.parametrize("text, expected", [
    ("preset quick: 3 configurations; r runs it", "preset quick: 3 configurations; x runs it"),
    ("stop the run (r) before changing the preset", "stop the run (x) before changing the preset"),
    ("no samples yet: press r to run", "no samples yet: press x to run"),
    ("quitting (q again quits at once)", "quitting (^q again quits at once)"),
    ("no preset: p picks one", "no preset: p picks one"),  # p is not remapped
    ("DISPLAY PAUSED (space resumes)", "DISPLAY PAUSED (P resumes)"),
    ("batch sizes: r is not an integer", "batch sizes: r is not an integer"),  # not a hint
])
def test_hints_name_the_active_keys(text, expected):
    assert localize(FakeApp({"run": "x", "quit": "ctrl+q", "pause": "P"}), text) == expected


KEYS_TOML = """\
[keys]
run = "q"
save = 5
edit = "nope"
runn = "x"
pause = "P"
"""


async def test_keys_toml_mistakes_are_notices_and_the_defaults_stay(make_app, tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(KEYS_TOML)
    app = make_app(keymap=load_keymap(path))
    async with app.run_test(size=SIZE) as pilot:
        warnings = [t for t in notices(app, "warning") if str(path) in t]
        assert [w.split(": ", 1)[0] for w in warnings] == \
            [f"{path}, line {n}" for n in (2, 3, 4, 5)]
        assert 'run = "q": "q" is already Quit\'s key (quit); run keeps "r"' in warnings[0]
        assert "save = 5: not a string" in warnings[1]
        assert '"nope" is not a key name' in warnings[2]
        assert 'unknown binding id "runn"' in warnings[3]
        await pilot.press("question_mark")
        keys = {d: k for k, d in app.screen.keys}
        assert (keys["Run/Stop"], keys["Pause"], keys["Save"], keys["Edit"]) == \
            ("r", "P", "s", "e")
        assert keys["Quit"].split() == ["^q", "q"]  # Textual's ctrl+q quits as well
        await pilot.press("escape")
        await pilot.press("r")  # run kept its key, and q did not become run
        await pilot.pause()
        assert len(app.starter.handles) == 1


async def test_broken_keys_toml_is_a_notice_with_its_line(make_app, tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[keys]\nrun = "x\n')
    app = make_app(keymap=load_keymap(path))
    async with app.run_test(size=SIZE):
        [warning] = [t for t in notices(app, "warning") if str(path) in t]
        assert warning.startswith(f"{path}, line 2: not valid TOML: ")
        assert warning.endswith("using the default keys")


async def test_a_remapped_run_key_shows_in_hints_help_and_palette(make_app):
    app = make_app(keymap={"run": "z", "help": "h"})
    async with app.run_test(size=SIZE) as pilot:
        assert "z runs it" in header(app) and "r runs" not in header(app)
        assert any(t.endswith("; z runs it") for t in notices(app, "info"))
        assert app.active_bindings["z"].binding.action == "toggle_run"
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Run / stop"].endswith("(key: z)")
        await pilot.press("h")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#notes").content)
        assert "z re-runs the current plan" in text
        assert "Escape, h or q closes this help" in str(
            app.screen.query_one("#close-hint").content)
        await pilot.press("h")  # the help key closes it again
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_the_too_small_notice_names_the_quit_key(make_app):
    app = make_app(keymap={"quit": "ctrl+q"})
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert "^q quits" in str(app.query_one("#too-small").content)
