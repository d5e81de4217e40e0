"""A run on its own (a thread, or a process of its own): the same events either way, stops and
kills that end it within their bounds, and no process that outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from helpers import fake_plan, stray_children, wait_until
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, RunFinished, RunStarted, Samples,
)
from latency_tui.core.isolation import EngineProcessError, start

REPO = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=60.0):
    wait_until(predicate, timeout, 0.02)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_the_run_relays_every_event_and_returns_its_results(isolation, tmp_path):
    events = []
    handle = start(fake_plan(duration_s=0.3, batch_sizes=(1, 2)), events.append,
                   isolation=isolation, log_path=tmp_path / "engine.log")
    assert handle.wait(60) and handle.error is None
    assert [r.status for r in handle.results] == ["finished", "finished"]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, ConfigFinished) for e in events) == 2
    counted = sum(e.block.size for e in events if isinstance(e, Samples))
    assert counted == sum(r.samples for r in handle.results)
    wait_for(lambda: stray_children() == [], 10)


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_stop_ends_the_configuration_in_progress(isolation, tmp_path):
    seen = threading.Event()
    events = []

    def sink(event):
        events.append(event)
        if isinstance(event, Samples):
            seen.set()

    handle = start(fake_plan(duration_s=30.0), sink, isolation=isolation,
                   log_path=tmp_path / "engine.log")
    assert seen.wait(60)
    handle.stop()
    assert handle.wait(20)
    assert [r.status for r in handle.results] == ["cancelled"]
    assert events[-1].cancelled


def test_an_engine_process_that_dies_is_an_error_not_a_hang(tmp_path):
    seen = threading.Event()
    handle = start(fake_plan(duration_s=30.0), lambda e: isinstance(e, Samples) and seen.set(),
                   isolation="process", log_path=tmp_path / "engine.log")
    assert seen.wait(60)
    os.kill(handle.pid, signal.SIGKILL)
    assert handle.wait(20)
    assert isinstance(handle.error, EngineProcessError)
    assert "exit code -9" in str(handle.error) and "engine.log" in str(handle.error)


def test_kill_ends_a_hung_engine_and_its_copies_at_once(tmp_path):
    seen = threading.Event()
    plan = fake_plan(copies=(2,), copy_mode="process", mode="sleep", latency_ms=1.0,
                     hang_after=100, duration_s=60)
    handle = start(plan, lambda e: isinstance(e, Samples) and seen.set(), isolation="process",
                   log_path=tmp_path / "engine.log")
    assert seen.wait(60)
    wait_for(lambda: len(stray_children()) == 3)  # the engine and its two copies
    asked = time.monotonic()
    handle.kill()
    assert handle.wait(10)
    wait_for(lambda: stray_children() == [], 5)
    assert time.monotonic() - asked < 5


#: A factory like ``workloads:sleeps_in_load`` that also says when it is in its load: it
#: creates a file next to itself, then takes a minute.
STUCK_LOAD = '''
import pathlib
import time


def loads_for_a_minute():
    pathlib.Path(__file__).with_suffix(".loading").touch()
    time.sleep(60)
    return (lambda: None), ()
'''


def test_a_stop_with_a_grace_ends_an_engine_stuck_in_a_model_load(tmp_path):
    """A load cannot be interrupted: the stop's grace ends the process, killed when the grace
    runs out (not left to end by itself, nor waited for through the load's minute)."""
    factory = tmp_path / "stuck_load.py"
    factory.write_text(STUCK_LOAD, encoding="utf-8")
    plan = fake_plan(model=f"{factory}:loads_for_a_minute", batch_sizes=(1, 2), duration_s=5.0)
    handle = start(plan, lambda e: None, isolation="process", log_path=tmp_path / "engine.log")
    assert handle.killable
    wait_for(factory.with_suffix(".loading").exists, 60)  # in its minute-long load now
    asked = time.monotonic()
    handle.stop(0.5)
    answered = time.monotonic()
    assert asked + 0.5 <= handle.kill_at <= answered + 0.5
    assert handle.wait(10)
    assert time.monotonic() - asked < 10
    assert handle.killed and handle.error is None  # asked for: not an engine failure
    assert asked + 0.5 <= handle.kill_at  # killed when the grace ran out, not before
    wait_for(lambda: stray_children() == [], 5)


def test_kill_returns_at_once(tmp_path):
    started = threading.Event()
    plan = fake_plan(model="workloads:sleeps_in_load", duration_s=5.0)
    handle = start(plan, lambda e: isinstance(e, ConfigStarted) and started.set(),
                   isolation="process", log_path=tmp_path / "engine.log")
    assert started.wait(60)
    asked = time.monotonic()
    handle.kill()
    assert time.monotonic() - asked < 0.2  # the UI thread calls it
    assert handle.wait(10)
    wait_for(lambda: stray_children() == [], 5)


def test_a_failed_configuration_and_its_traceback_go_to_the_engine_log(tmp_path):
    log = tmp_path / "engine.log"
    plan = fake_plan(batch_sizes=(4,), duration_s=0.2, handler="workloads:fails_at_batch_4")
    handle = start(plan, lambda e: None, isolation="process", log_path=log)
    assert handle.wait(60) and handle.error is None
    (result,) = handle.results
    assert result.status == "failed" and "Traceback" in result.traceback
    text = log.read_text()
    assert "configuration 1 (batch 4, 1 x 1) failed [out_of_memory]: RuntimeError: out of memory" in text
    assert result.traceback.strip() in text


def test_a_plan_that_cannot_be_sent_fails_at_once(tmp_path):
    plan = fake_plan()

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    bad = plan.__class__(**{**plan.__dict__, "preset": {"x": Unpicklable()}})
    with pytest.raises(TypeError):
        start(bad, lambda e: None, isolation="process", log_path=tmp_path / "e.log")


ORPHAN_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers import fake_plan
from latency_tui.core.events import Samples
from latency_tui.core.isolation import start

def main():
    plan = fake_plan(copies=(2,), copy_mode="process", mode="sleep", latency_ms=1.0,
                     duration_s=120)
    seen = []
    handle = start(plan, lambda e: isinstance(e, Samples) and seen.append(1), isolation="process",
                   log_path={log!r})
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    print(handle.pid, flush=True)
    time.sleep(120)

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal")
def test_nothing_outlives_a_parent_killed_with_sigkill(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(ORPHAN_SCRIPT.format(tests=str(REPO / "tests"), log=str(tmp_path / "e.log")))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        engine_pid = int(parent.stdout.readline())
        engine = psutil.Process(engine_pid)
        wait_for(lambda: len(engine.children()) == 2)
        family = [engine, *engine.children()]
        parent.kill()  # no handler runs: only the kernel and the watchdogs can clean up
        parent.wait(10)
        gone, alive = psutil.wait_procs(family, timeout=5)
        assert alive == []
    finally:
        parent.kill()
