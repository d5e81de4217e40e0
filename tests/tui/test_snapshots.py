"""Snapshot tests: the whole screen at 120x40, 80x24 and too small, against the seeded fake
engine, so that a layout change shows up as a picture to review (``--snapshot-update``, then
look at the report before accepting)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from .conftest import build_app as _build_app
from .conftest import finish_run, wait_paused

pytest.importorskip("pytest_textual_snapshot")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Relative session paths, so that no temporary directory name reaches a snapshot."""
    monkeypatch.chdir(tmp_path)


def build_app(tmp_path, *args, **options):
    options.setdefault("session_path", "session.json")
    return _build_app(tmp_path, *args, **options)


async def run_sweep(pilot) -> None:
    await pilot.press("r")
    await finish_run(pilot)


def test_idle_120x40(snap_compare, tmp_path):
    assert snap_compare(build_app(tmp_path), terminal_size=(120, 40))


def test_finished_sweep_120x40(snap_compare, tmp_path):
    app = build_app(tmp_path, engine={"fail_batch": 4, "unstable_index": 1})
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_sweep)


def test_running_120x40(snap_compare, tmp_path):
    app = build_app(tmp_path, engine={"pause_at": (2, 5)})

    async def mid_run(pilot):
        await pilot.press("r")
        await wait_paused(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=mid_run)


def test_finished_sweep_80x24(snap_compare, tmp_path):
    app = build_app(tmp_path, engine={"fail_batch": 4})
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_sweep)


def test_too_small(snap_compare, tmp_path):
    assert snap_compare(build_app(tmp_path), terminal_size=(60, 20))


def test_help_screen(snap_compare, tmp_path):
    assert snap_compare(build_app(tmp_path), terminal_size=(120, 40), press=["question_mark"])


def test_batch_prompt_with_a_validation_message(snap_compare, tmp_path):
    app = build_app(tmp_path, "cpu-mlp")

    async def bad_value(pilot):
        from textual.widgets import Input

        await pilot.press("b")
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is drawn on or off by the clock
        await pilot.press("ctrl+u", "0", "enter")

    assert snap_compare(app, terminal_size=(120, 40), run_before=bad_value)


def test_edit_screen(snap_compare, tmp_path):
    async def open_editor(pilot):
        from textual.widgets import Input

        await pilot.press("e")
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is drawn on or off by the clock
        await pilot.pause()

    assert snap_compare(build_app(tmp_path, "cpu-bert"), terminal_size=(120, 40),
                        run_before=open_editor)


def test_viewing_a_saved_session(snap_compare, tmp_path):
    source = build_app(tmp_path, engine={"fail_batch": 2}, session_path="recorded.json")

    async def record():
        async with source.run_test(size=(120, 40)) as pilot:
            await run_sweep(pilot)

    asyncio.run(record())
    data = json.loads(Path("recorded.json").read_text())
    data["created"] = "2025-01-31T12:00:00+00:00"
    Path("recorded.json").write_text(json.dumps(data))
    app = build_app(tmp_path, "cpu-mlp", open_session="recorded.json")

    async def settle(pilot):
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=settle)
