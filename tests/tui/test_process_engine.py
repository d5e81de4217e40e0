"""The engine in its own process: the same events as in-process, stop, and failures."""

from __future__ import annotations

import threading

import pytest

from latency_tui.core.events import ConfigFinished, RunFinished, RunStarted, Samples
from latency_tui.tui.process_engine import EngineProcessError, ProcessEngine


def fake_plan(duration_s=0.3, batch_sizes=(1, 2)):
    from helpers import fake_plan as plan  # tests/helpers.py: a plan on the fake device

    return plan(duration_s=duration_s, batch_sizes=batch_sizes)


def test_runs_the_plan_in_a_child_and_relays_every_event(tmp_path):
    events = []
    engine = ProcessEngine(fake_plan(), events.append, log_path=tmp_path / "engine.log")
    results = engine.run()
    assert [r.status for r in results] == ["finished", "finished"]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, ConfigFinished) for e in events) == 2
    counted = sum(e.latencies_ns.size for e in events if isinstance(e, Samples))
    assert counted == sum(r.samples for r in results)
    assert not engine._process.is_alive()


def test_stop_reaches_the_child_within_the_configuration(tmp_path):
    events = []
    seen_samples = threading.Event()

    def sink(event):
        events.append(event)
        if isinstance(event, Samples):
            seen_samples.set()

    engine = ProcessEngine(fake_plan(duration_s=30.0), sink, log_path=tmp_path / "engine.log")
    outcome = []
    thread = threading.Thread(target=lambda: outcome.extend(engine.run()))
    thread.start()
    assert seen_samples.wait(60)
    engine.stop()
    thread.join(20)
    assert not thread.is_alive()
    assert [r.status for r in outcome] == ["cancelled"]
    assert events[-1].cancelled


def test_a_child_that_dies_is_an_error_not_a_hang(tmp_path):
    seen_samples = threading.Event()
    engine = ProcessEngine(fake_plan(duration_s=30.0),
                           lambda e: isinstance(e, Samples) and seen_samples.set(),
                           log_path=tmp_path / "engine.log")
    failure = []

    def run():
        try:
            engine.run()
        except EngineProcessError as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert seen_samples.wait(60)
    engine._process.kill()
    thread.join(20)
    assert not thread.is_alive()
    assert "exit code -9" in str(failure[0]) and "engine.log" in str(failure[0])


def test_a_plan_that_cannot_be_sent_fails_at_once(tmp_path):
    plan = fake_plan()

    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    bad = plan.__class__(**{**plan.__dict__, "preset": {"x": Unpicklable()}})
    with pytest.raises(TypeError):
        ProcessEngine(bad, lambda e: None, log_path=tmp_path / "e.log").run()
