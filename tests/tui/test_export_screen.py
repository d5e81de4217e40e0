"""The ``x`` key: what is on screen, as an SVG in the data directory's ``exports`` folder, its
path in a toast and in the notices; a folder that cannot be written is an error notice."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from latency_tui.tui.keys import check_keymap, key_rows

from .conftest import SIZE
from .test_app import notices


def recording_toasts(app):
    toasts = []
    original = app.notify

    def notify(message, *args, **kwargs):
        toasts.append((message, kwargs))
        return original(message, *args, **kwargs)

    app.notify = notify
    return toasts


async def test_x_exports_the_screen_into_the_data_directory(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        toasts = recording_toasts(app)
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("x")  # twice within a second: a second file, not a replaced one
        await pilot.pause()
        files = sorted((tmp_path / "data" / "exports").glob("latency-tui-*.svg"))
        assert len(files) == 2
        root = ET.parse(files[0]).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "latency" in "".join(root.itertext())  # the histogram pane's title, as on screen
        said = [text for text in notices(app, "info") if text.startswith("screen exported to")]
        assert sorted(said) == sorted(f"screen exported to {f}" for f in files)
        assert sorted(message for message, _ in toasts) == sorted(str(f) for f in files)
        assert toasts[0][1]["title"] == "Screen exported to"
        assert ("x", "Export the screen (SVG)") in key_rows(app)  # and so in help


async def test_an_unwritable_exports_folder_is_an_error_notice(make_app, tmp_path):
    app = make_app()
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "exports").write_text("a file where the folder goes")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await pilot.pause()
        errors = notices(app, "error")
        assert errors and errors[-1].startswith("could not export the screen to ")
        assert app.is_running


def test_x_is_exports_key_and_can_be_remapped():
    accepted, problems = check_keymap({"run": "x"})
    assert accepted == {} and problems == [
        ("run", 'run = "x": "x" is already Export the screen (SVG)\'s key (export)')]
    assert check_keymap({"export": "X"})[0] == {"export": "X"}
