"""Stop and quit take effect within a second in every phase: the engine is told, then its
process is ended after a short grace, and the screen says what it waits for and that a second
key ends it now.

The phases are reached with the real engine in a process of its own (the app's own way, with
its engine.log), on models and fake devices that are slow where a user's are: a factory that
sleeps in its load, a minute-long compile, a warm-up inference that takes a minute, process
copies that take a minute to load, and plain measuring. The header and notice words are checked
on the scripted run, which can hold in a phase and ignore a stop as a stuck load does.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers import stray_children

from .conftest import SIZE, finish_run, wait_for, wait_paused
from .test_app import header, notices, statuses

#: Each phase: the preset that reaches it, and the phase the engine reports while in it.
SLOW = {
    "loading": ("""
        [model]
        source = "workloads:sleeps_in_load"
        [run]
        device = "cpu"
        batch_sizes = [1, 2]
        duration_s = 5
    """, "loading"),
    "compiling": ("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        duration_s = 5
        [device]
        mode = "sleep"
        compile_ms = 60000
    """, "compiling"),
    "warm-up": ("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        duration_s = 5
        [device]
        mode = "sleep"
        handler = "workloads:hangs_in_warmup"
    """, "warmup"),
    # The copies' load shows as "compiling" on a device that compiles (the fake one does).
    "copies starting": ("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        copy_mode = "process"
        copies = [2]
        batch_sizes = [1, 2]
        duration_s = 5
        [device]
        mode = "sleep"
        load_ms = 60000
    """, "compiling"),
    "measuring": ("""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        duration_s = 30
        [device]
        mode = "sleep"
        latency_ms = 1.0
    """, "measuring"),
}
WARMUP = """
    [warmup]
    min_iterations = 3
    max_iterations = 50
    window = 5
    max_s = 5.0
"""


def slow_app(make_app, write_preset, phase: str):
    text, _ = SLOW[phase]
    path = write_preset(text + WARMUP, name=f"slow-{phase.replace(' ', '-')}.toml")
    app = make_app(str(path))
    app.runs.start_run = app._start_in_process  # the real engine process, as the app runs it
    return app


async def reach(pilot, phase: str) -> None:
    app = pilot.app
    engine_phase = SLOW[phase][1]
    await wait_for(pilot, lambda: app.run_active and app.runs.phase() == engine_phase, 60)
    if phase in ("loading", "copies starting"):
        await asyncio.sleep(0.5)  # the copies are in their load by now
    elif phase == "measuring":
        await wait_for(pilot, lambda: app.live_run.current_config().count > 0, 30)


async def wait_quit(app, timeout: float) -> None:
    """Until the app has called ``exit`` (bounded)."""
    deadline = time.monotonic() + timeout
    while app.return_code is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def ended_within(pilot, seconds: float) -> float:
    began = time.monotonic()
    await wait_for(pilot, lambda: not pilot.app.run_active, seconds + 5)
    took = time.monotonic() - began
    assert took < seconds, f"the stop took {took:.1f} s"
    return took


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(SLOW))
async def test_r_stops_within_a_second_in_every_phase(make_app, write_preset, phase):
    app = slow_app(make_app, write_preset, phase)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, phase)
        await pilot.press("r")
        if app.run_active:  # a compile or measuring may have ended already
            assert "STOPPING" in header(app) and "waiting for" in header(app)
            assert "r again ends it now" in header(app)
        (said,) = [t for t in notices(app, "info") if t.startswith("stopping:")]
        assert "the rest are skipped" in said
        await ended_within(pilot, 1.5)
        await finish_run(pilot)
        assert "STOPPED" in header(app)
        assert statuses(app) == ["cancelled", "skipped"]
        if phase == "measuring":  # it stopped by itself, and kept what it measured
            assert "measuring ends within one inference" in said
            assert not app.runs.was_killed
            assert app.sessions.session.results[0].samples > 0
        elif phase == "compiling":  # the engine leaves a compile at once
            assert not app.runs.was_killed
        else:  # a step it cannot interrupt: its process was ended after the grace
            assert "its process is ended in 0.5 s" in said
            assert app.runs.was_killed
            assert any("its process was ended" in t for t in notices(app, "info"))
        assert "0 ok, 1 cancelled, 1 skipped of 2" in header(app)
    deadline = time.monotonic() + 10
    while stray_children() and time.monotonic() < deadline:  # copies die with the engine
        await asyncio.sleep(0.05)
    assert stray_children() == []


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["loading", "copies starting"])
async def test_quit_during_a_slow_load_leaves_within_a_second(make_app, write_preset, phase):
    app = slow_app(make_app, write_preset, phase)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, phase)
        await pilot.press("q", "y")
        await pilot.pause()
        assert "q again quits now" in header(app)
        began = time.monotonic()
        await wait_quit(app, 10)
        assert time.monotonic() - began < 1.5
    assert app.return_code == 0


@pytest.mark.slow
async def test_q_twice_during_a_slow_load_quits_at_once(make_app, write_preset):
    app = slow_app(make_app, write_preset, "loading")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, "loading")
        await pilot.press("q", "y")
        began = time.monotonic()
        await pilot.press("q")
        await wait_quit(app, 10)
        assert time.monotonic() - began < 0.5
    assert app.return_code == 0


# -- the words, on the scripted run ------------------------------------------------------------
async def test_a_stuck_load_is_killed_after_the_grace_and_the_screen_says_so(make_app):
    app = make_app(engine={"hold": (0, "loading"), "deaf": True})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        assert "loading builtin:noop..." in header(app)
        await pilot.press("r")
        await pilot.pause()
        text = header(app)
        assert "STOPPING" in text and "waiting for the model load; killed in 1 s; r again ends it now" in text
        assert "r again ends it now" in text
        assert notices(app, "info")[-1] == (
            "stopping: the engine is loading the model; its process is ended in 0.5 s if it "
            "has not stopped by then (r again ends it now); the rest are skipped")
        handle = app.starter.last
        await ended_within(pilot, 1.5)
        await finish_run(pilot)
        assert handle.kill_calls == 1  # asked, then killed when the grace ran out
        assert "STOPPED" in header(app) and "0 ok, 1 cancelled, 3 skipped of 4" in header(app)
        assert notices(app, "info")[-1].startswith(
            "the engine did not stop in time while loading the model: its process was ended")


async def test_r_again_while_stopping_kills_at_once(make_app):
    app = make_app(engine={"hold": (0, "warmup"), "deaf": True})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("r")
        assert "waiting for the warm-up; killed in 1 s" in header(app)
        await pilot.press("r")
        await ended_within(pilot, 0.5)
        assert app.starter.last.kill_calls == 1
        assert "ending the engine's process now" in notices(app, "info")


async def test_quit_while_stopping_says_q_again_and_q_again_quits(make_app):
    app = make_app(engine={"hold": (0, "loading"), "deaf": True})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("q", "y")
        await pilot.pause()
        assert "q again quits now" in header(app)
        assert "(q again quits now)" in notices(app, "info")[-1]
        await pilot.press("q")
        await wait_quit(app, 5)
    assert app.starter.last.kill_calls >= 1 and app.return_code == 0


async def test_the_time_left_counts_loading_and_warm_up(make_app):
    """The ETA grows while the first configuration loads (a lower bound until one has
    finished), and then counts each configuration's setup as the finished ones took."""
    now = [100.0]
    app = make_app(engine={"hold": (0, "loading")}, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        app._tick(force=True)
        assert "at least 00:20 left" in header(app)  # 4 x 5 s: nothing known of loading yet
        now[0] = 130.0  # 30 s of loading
        app._tick(force=True)
        assert "at least 01:50 left" in header(app)  # 5 s + 3 x (30 s + 5 s)
        handle = app.starter.last
        handle.pause_at = (1, 4)
        handle.paused.clear()
        now[0] = 135.0  # configuration 1 measures for its 5 s
        handle.resume.set()
        await wait_paused(pilot)  # configuration 2 measuring, 1 took 30 s + 5 s
        app._tick(force=True)
        assert "config 2/4" in header(app)
        assert "~01:12 left" in header(app)  # 2.5 s + 2 x (30 s + 5 s)
        handle.resume.set()
        await finish_run(pilot)
