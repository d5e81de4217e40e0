"""The timing loops and their recorder: every sample lands once with its start and end, stops
are honoured, a device clock is read after the wait."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from latency_tui.core.timing import (
    END, START, Recorder, StopSignal, device_timed_loop, pipeline_loop, sleep_until, timed_loop,
)

FOREVER = 1 << 62


def test_quota_stops_the_loop_and_every_sample_is_drained_once():
    recorder = Recorder(chunk_size=64)  # small chunks: the loop rotates many times
    timed_loop(lambda: None, None, recorder, StopSignal(), FOREVER, quota=1000)
    assert recorder.written == 1000
    first = recorder.drain()
    assert first.shape == (2, 1000) and first.dtype == np.int64
    starts, ends = first[START], first[END]
    assert (ends >= starts).all()
    # One loop, one worker: each inference starts after the previous one ended.
    assert (starts[1:] >= ends[:-1]).all()
    assert recorder.drain().shape == (2, 0)


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
    worker.join(30)
    parts.append(recorder.drain())
    assert sum(p.shape[1] for p in parts) == 200_000
    joined = np.concatenate(parts, axis=1)
    assert (np.diff(joined[START]) > 0).all()  # in order, none twice
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


def test_device_loop_reads_the_device_clock_after_the_wait():
    order = []
    recorder = Recorder(columns=3)
    device_times = iter(range(1000, 1003))

    def device_ns():
        order.append("device")
        return next(device_times)

    device_timed_loop(lambda: order.append("infer"), lambda: order.append("wait"), device_ns,
                      recorder, StopSignal(), FOREVER, quota=3)
    assert order == ["infer", "wait", "device"] * 3
    assert recorder.drain()[2].tolist() == [1000, 1001, 1002]


def test_pipeline_loop_keeps_four_readings_in_order():
    recorder = Recorder(columns=4)
    pipeline_loop(lambda raw: raw, lambda x: x, lambda x: time.sleep(0.001), None,
                  lambda out: None, "raw", recorder, StopSignal(), FOREVER, quota=5)
    pre, begin, end, post = recorder.drain()
    assert (pre <= begin).all() and (begin < end).all() and (end <= post).all()
    assert ((end - begin) >= 1_000_000).all()


def test_last_end_is_what_a_watchdog_reads():
    recorder = Recorder(chunk_size=4)
    assert recorder.last_end_ns() is None
    timed_loop(lambda: None, None, recorder, StopSignal(), FOREVER, quota=6)
    assert recorder.last_end_ns() == recorder.end_ns


def test_sleep_until_wakes_at_the_instant_or_at_a_stop():
    stop = StopSignal()
    when = time.perf_counter_ns() + 30_000_000
    sleep_until(when, stop)
    assert time.perf_counter_ns() >= when
    stop.request()
    began = time.perf_counter()
    sleep_until(time.perf_counter_ns() + 10 * 10**9, stop)
    assert time.perf_counter() - began < 0.5


def test_the_newest_end_is_known_after_the_collector_took_its_chunk():
    """A watchdog that lost the newest sample when its full chunk was handed over took the
    measuring start for the start of the inference in flight: a false timeout after minutes."""
    recorder = Recorder(chunk_size=4)
    timed_loop(lambda: None, None, recorder, StopSignal(), FOREVER, quota=8)  # two full chunks
    newest = recorder.last_end_ns()
    recorder.drain()
    assert recorder.chunks[:2] == [None, None]  # (a third, empty one waits for more)
    assert recorder.last_end_ns() == newest == recorder.end_ns


def test_served_loop_records_each_request_scheduled_time_beside_its_start_and_end():
    import queue

    from latency_tui.core.timing import END_OF_REQUESTS, SCHEDULED, served_loop

    requests = queue.SimpleQueue()
    now = time.perf_counter_ns()
    dues = [now - 5_000_000, now + 2_000_000, now + 3_000_000]  # one late, two ahead of time
    for due in dues:
        requests.put(due)
    requests.put(END_OF_REQUESTS)
    recorder = Recorder(3, chunk_size=2)  # START, END, SCHEDULED; the chunk rotates
    busy = [0]
    served_loop(lambda: None, None, None, requests.get, busy, 0, recorder, StopSignal())
    rows = recorder.drain()
    assert rows.shape == (3, 3)
    assert rows[SCHEDULED].tolist() == dues
    # A request handed over early is not started before its time; a late one at once.
    assert (rows[START] >= rows[SCHEDULED])[1:].all()
    assert rows[START][0] - dues[0] >= 5_000_000
    assert (rows[END] >= rows[START]).all() and busy == [0]
    assert recorder.end_ns == rows[END][-1]


def test_served_loop_reads_the_device_clock_and_honours_a_stop():
    import queue

    from latency_tui.core.timing import DEVICE, SCHEDULED, served_loop

    requests = queue.SimpleQueue()
    for _ in range(5):
        requests.put(time.perf_counter_ns())
    stop = StopSignal()
    served = []

    def call():
        served.append(1)
        if len(served) == 2:
            stop.request()

    recorder = Recorder(4)
    served_loop(call, lambda: None, lambda: 42, requests.get, [0], 0, recorder, stop)
    rows = recorder.drain()
    assert rows.shape == (4, 2) and rows[DEVICE].tolist() == [42, 42]
    assert (rows[SCHEDULED] <= rows[START]).all()


def test_pace_waits_until_the_instant_and_a_stop_ends_it():
    from latency_tui.core.timing import pace

    for share in (True, False):
        due = time.perf_counter_ns() + 3_000_000
        pace(due, StopSignal(), share)
        assert time.perf_counter_ns() >= due
    stop = StopSignal()
    threading.Timer(0.05, stop.request).start()
    pace(time.perf_counter_ns() + 60_000_000_000, stop)  # returns at the stop, not in a minute
    assert stop.requested
