"""The timing loop and its recorder: every sample lands once, stops are honoured."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from latency_tui.core.timing import Recorder, StopSignal, timed_loop

FOREVER = 1 << 62


def test_quota_stops_the_loop_and_every_sample_is_drained_once():
    recorder = Recorder(chunk_size=64)  # small chunks: the loop rotates many times
    timed_loop(lambda: None, None, recorder, StopSignal(), FOREVER, quota=1000)
    assert recorder.written == 1000
    first = recorder.drain()
    assert first.size == 1000 and first.dtype == np.int64 and (first >= 0).all()
    assert recorder.drain().size == 0


def test_wait_is_called_after_every_inference():
    calls = []
    recorder = Recorder()
    timed_loop(lambda: calls.append("infer"), lambda: calls.append("wait"), recorder,
               StopSignal(), FOREVER, quota=3)
    assert calls == ["infer", "wait"] * 3


def test_deadline_stops_the_loop():
    recorder = Recorder()
    start = time.perf_counter_ns()
    timed_loop(lambda: time.sleep(0.001), None, recorder, StopSignal(), start + 50_000_000, FOREVER)
    assert 10 <= recorder.written <= 60
    assert recorder.end_ns >= start + 50_000_000


def test_concurrent_drain_sees_each_sample_exactly_once():
    recorder = Recorder(chunk_size=128)
    stop = StopSignal()
    worker = threading.Thread(target=timed_loop, args=(lambda: None, None, recorder, stop,
                                                       FOREVER, 200_000))
    worker.start()
    parts = []
    while worker.is_alive():
        parts.append(recorder.drain())
    worker.join()
    parts.append(recorder.drain())
    assert sum(p.size for p in parts) == 200_000
    # Drained chunks are released so memory stays bounded to the undrained tail.
    assert sum(c is not None for c in recorder.chunks) <= 2


@pytest.mark.parametrize("delay_s", [0.0, 0.002])
def test_stop_request_takes_effect_within_one_inference(delay_s):
    stop = StopSignal()
    recorder = Recorder()
    calls = []

    def infer():
        calls.append(1)
        if len(calls) == 5:
            stop.request()
        time.sleep(delay_s)

    timed_loop(infer, None, recorder, stop, FOREVER, FOREVER)
    assert len(calls) == 5
