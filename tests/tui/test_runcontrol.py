"""Stop and quit take effect within a short grace in every phase: the engine is told, then its
process is ended when the grace runs out (half a second outside measuring), and the screen says
what it waits for and that a second key ends it now.

The grace is checked on the run handle's own clock (when it is to be killed, against when the
key was pressed, so a slow host cannot shift it); the handle also tells whether a kill ended the
run (the engine itself would abandon a stuck load a couple of seconds later). The wall-clock
time is bounded loosely (10 s), far below the minute-long steps (30 s for the scripted run that
ignores a stop).

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


#: A loose wall-clock bound on a stop or quit: far below the minute-long steps it must not wait
#: for (30 s for the scripted run that ignores a stop), far above a loaded host's delays.
PROMPTLY_S = 10.0


async def wait_quit(app, timeout: float) -> float:
    """Until the app has called ``exit``; how long that took. Fails, saying where the app
    stands, if it has not within ``timeout``."""
    began = time.monotonic()
    while app.return_code is None:
        if time.monotonic() - began >= timeout:
            handle = app.runs.handle
            raise AssertionError(
                f"the app did not quit in {timeout:g} s: screen {type(app.screen).__name__}, "
                f"quitting {app.quitting}, run active {app.run_active}, "
                f"engine done {None if handle is None else handle.done}")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def ended_within(pilot, seconds: float) -> float:
    """Until the run has ended; how long that took. Fails if it took ``seconds`` or more."""
    began = time.monotonic()
    await wait_for(pilot, lambda: not pilot.app.run_active, seconds + 5)
    took = time.monotonic() - began
    assert took < seconds, f"the stop took {took:.1f} s"
    return took


def assert_kill_due_after(handle, grace: float, pressed: float, answered: float) -> None:
    """The stop set the handle to be killed ``grace`` seconds after it: its ``kill_at`` lies
    ``grace`` after the moment the key was pressed (between ``pressed`` and ``answered``, the
    press's start and end). Checked after the run has ended, this also says no kill came
    earlier (``kill`` moves ``kill_at`` to when it ran)."""
    low, high = pressed + grace, answered + grace
    assert handle.kill_at is not None, "the stop set no kill time"
    assert low - 1e-3 <= handle.kill_at <= high + 1e-3, (
        f"kill due {handle.kill_at - pressed:.3f} s after the key press "
        f"(the press took {answered - pressed:.3f} s), not {grace:g} s")


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(SLOW))
async def test_r_stops_every_phase_within_its_grace(make_app, write_preset, phase):
    """A step the engine leaves by itself ends before the grace runs out (it is not killed);
    one it cannot interrupt is killed when its half-second grace runs out, not a minute
    later."""
    app = slow_app(make_app, write_preset, phase)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, phase)
        handle = app.runs.handle
        pressed = time.monotonic()
        await pilot.press("r")
        answered = time.monotonic()
        if app.run_active:  # a compile or measuring may have ended already
            assert "STOPPING" in header(app) and "waiting for" in header(app)
            assert "r again ends it now" in header(app)
        (said,) = [t for t in notices(app, "info") if t.startswith("stopping:")]
        assert "the rest are skipped" in said
        await ended_within(pilot, PROMPTLY_S)
        await finish_run(pilot)
        assert_kill_due_after(handle, 2.5 if phase == "measuring" else 0.5, pressed, answered)
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
async def test_quit_during_a_slow_load_leaves_once_its_grace_ends_it(make_app, write_preset,
                                                                     phase):
    """q, y in a minute-long load: the engine is killed when the half-second grace runs out,
    and the app leaves then, not when the load ends."""
    app = slow_app(make_app, write_preset, phase)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, phase)
        handle = app.runs.handle
        pressed = time.monotonic()
        await pilot.press("q", "y")
        answered = time.monotonic()
        await pilot.pause()
        assert "q again quits now" in header(app)
        await wait_quit(app, PROMPTLY_S)
    assert app.return_code == 0
    assert handle.killed and app.runs.was_killed
    assert_kill_due_after(handle, 0.5, pressed, answered)


@pytest.mark.slow
async def test_q_twice_during_a_slow_load_quits_at_once(make_app, write_preset, monkeypatch):
    """The second q kills the engine and leaves without waiting for it. The grace is made
    30 s here, so that only that kill can end the minute-long load in time."""
    from latency_tui.tui import runcontrol

    monkeypatch.setattr(runcontrol, "SETUP_GRACE_S", 30.0)
    app = slow_app(make_app, write_preset, "loading")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await reach(pilot, "loading")
        handle = app.runs.handle
        await pilot.press("q", "y")
        assert "its process is ended in 30 s" in notices(app, "info")[-1]
        assert not handle.killed
        began = time.monotonic()
        await pilot.press("q")
        await wait_quit(app, PROMPTLY_S)
        took = time.monotonic() - began
        assert took < 5, f"quitting took {took:.1f} s"
    assert app.return_code == 0
    assert handle.killed  # by the second q: the grace had 30 s to go
    assert handle.wait(PROMPTLY_S), "the killed engine's process did not end"


# -- the words, on the scripted run ------------------------------------------------------------
async def test_a_stuck_load_is_killed_after_the_grace_and_the_screen_says_so(make_app):
    app = make_app(engine={"hold": (0, "loading"), "deaf": True})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        assert "loading builtin:noop..." in header(app)
        handle = app.starter.last
        pressed = time.monotonic()
        await pilot.press("r")
        answered = time.monotonic()
        await pilot.pause()
        text = header(app)
        assert "STOPPING" in text and "waiting for the model load; killed in 1 s; r again ends it now" in text
        assert "r again ends it now" in text
        assert notices(app, "info")[-1] == (
            "stopping: the engine is loading the model; its process is ended in 0.5 s if it "
            "has not stopped by then (r again ends it now); the rest are skipped")
        await ended_within(pilot, PROMPTLY_S)  # it ignores the stop: only the kill ends it
        await finish_run(pilot)
        assert handle.kill_calls == 1  # asked, then killed when the grace ran out
        assert_kill_due_after(handle, 0.5, pressed, answered)
        assert "STOPPED" in header(app) and "0 ok, 1 cancelled, 3 skipped of 4" in header(app)
        assert notices(app, "info")[-1].startswith(
            "the engine did not stop in time while loading the model: its process was ended")


async def test_r_again_while_stopping_kills_at_once(make_app, monkeypatch):
    """The grace is made 30 s here, so that only the second r's kill can end the run (which
    ignores the stop) in time."""
    from latency_tui.tui import runcontrol

    monkeypatch.setattr(runcontrol, "SETUP_GRACE_S", 30.0)
    app = make_app(engine={"hold": (0, "warmup"), "deaf": True})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("r")
        assert "waiting for the warm-up; killed in 30 s" in header(app)
        handle = app.starter.last
        assert handle.kill_calls == 0
        await pilot.press("r")
        answered = time.monotonic()
        await ended_within(pilot, 5)
        assert handle.kill_calls == 1
        assert handle.kill_at <= answered  # killed then, not when the grace runs out
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
