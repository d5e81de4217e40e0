"""The timing loops and the store they write into: the one place where the engine's own overhead
lands in every sample.

Each worker thread owns a ``Recorder`` of preallocated int64 chunks with one row per column: the
start and end clock readings of every inference (``perf_counter_ns``, the system-wide monotonic
clock, so copies in other processes read the same clock), and, where the backend can time the
device, its device time. The loop reads the clock, runs one inference through its lane, waits for
the device, reads the clock again and stores both readings: no Python object is kept per sample,
nothing is logged, no lock is taken and nothing waits on a consumer. A collector on another
thread drains what was written so far, which is safe without a lock because the loop publishes
``written`` only after the sample is stored, and chunks are only ever appended.

Keeping timestamps, not durations, is what gives the engine a per-second timeline, NeuronPerf's
average and peak throughput, and, in open loop, latency from each request's scheduled time.

The open loop has its own loop beside the closed ones (``served_loop``): a worker takes the
scheduled time of the next request from its copy's dispatcher (``openloop.Dispatcher``), serves
it and records the scheduled time in one more column, the last (``SCHEDULED``). The closed loops
are left exactly as they were: nothing of the open loop costs them a single operation.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from time import perf_counter_ns
from typing import Any, Callable, List, Optional

import numpy as np

CHUNK_SIZE = 1 << 14

#: Columns of a plain inference record, and of one with a device-side time.
START, END, DEVICE = 0, 1, 2
#: Columns of a pipeline record: preprocess start, inference start and end, postprocess end.
PRE_START, INFER_START, INFER_END, POST_END = 0, 1, 2, 3
#: The row of an open-loop record that holds each request's scheduled time: always the last.
SCHEDULED = -1
#: What a dispatcher hands a worker instead of a scheduled time when no request will follow.
END_OF_REQUESTS = -1


class StopSignal:
    """A stop request the timing loop can check in one attribute read.

    ``requested`` is what loops poll (cheaper than ``Event.is_set()``); ``event`` wakes
    anything that sleeps waiting for a stop.
    """

    __slots__ = ("requested", "event")

    def __init__(self) -> None:
        self.requested = False
        self.event = threading.Event()

    def request(self) -> None:
        self.requested = True
        self.event.set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)


class Recorder:
    """Clock readings (ns) written by one timing thread and drained by one collector thread."""

    __slots__ = ("columns", "chunks", "chunk_size", "written", "read", "end_ns", "error",
                 "_handed_tail")

    def __init__(self, columns: int = 2, chunk_size: int = CHUNK_SIZE) -> None:
        self.columns = columns
        self.chunk_size = chunk_size
        self.chunks: List[Optional[np.ndarray]] = []
        self.written = 0
        self.read = 0
        #: The clock when the loop ended (0 while it runs).
        self.end_ns = 0
        self.error: Optional[BaseException] = None
        #: The last sample of the newest chunk handed over by ``drain`` (its own array is gone).
        self._handed_tail: Optional[np.ndarray] = None

    def new_chunk(self) -> np.ndarray:
        chunk = np.empty((self.columns, self.chunk_size), dtype=np.int64)
        self.chunks.append(chunk)
        return chunk

    def last_end_ns(self, column: int = END) -> Optional[int]:
        """The end of the newest sample written (for a watchdog), None before the first."""
        written = self.written
        if written == 0:
            return None
        index, offset = divmod(written - 1, self.chunk_size)
        chunk = self.chunks[index] if index < len(self.chunks) else None
        if chunk is None:  # a full chunk the collector took: its last sample is the newest
            tail = self._handed_tail
            return None if tail is None else int(tail[column])
        return int(chunk[column, offset])

    def drain(self) -> np.ndarray:
        """Every sample written since the last drain, ``(columns, n)`` (collector thread only)."""
        written = self.written
        start = self.read
        if written <= start:
            return np.empty((self.columns, 0), dtype=np.int64)
        size = self.chunk_size
        parts = []
        position = start
        while position < written:
            index, offset = divmod(position, size)
            stop = min(written - index * size, size)
            chunk = self.chunks[index]
            if stop == size:
                # The writer is done with a full chunk: hand it over instead of copying it.
                self._handed_tail = chunk[:, -1].copy()
                self.chunks[index] = None
                parts.append(chunk[:, offset:] if offset else chunk)
            else:
                parts.append(chunk[:, offset:stop].copy())
            position = index * size + stop
        self.read = written
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def sleep_until(when_ns: int, stop: StopSignal) -> None:
    """Wait for the clock to reach ``when_ns`` (sleeping, then spinning the last half
    millisecond), so that every worker of every copy starts measuring at the same instant."""
    while not stop.requested:
        left = when_ns - perf_counter_ns()
        if left <= 0:
            return
        if left > 1_000_000:
            stop.wait(min((left - 500_000) / 1e9, 0.05))
        elif left > 500_000:
            time.sleep(0)


#: ``pace`` sleeps until this long before the instant, then spins.
SPIN_NS = 150_000
#: Linux's prctl option that sets the calling thread's timer slack (how late a sleep may end).
_PR_SET_TIMERSLACK = 29


def slack_timers() -> None:
    """Let the calling thread's sleeps end within a nanosecond of their time, not Linux's
    default 50 us of slack (an open loop's threads sleep until instants); no-op elsewhere."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _spin() -> None:
    pass


def _yield_gil() -> None:
    time.sleep(0)


def pace(due_ns: int, stop: StopSignal, share: bool = True, spin_ns: int = SPIN_NS) -> None:
    """Wait until the clock reaches ``due_ns`` to within a microsecond or so: sleep while far
    (a sleep wakes tens of microseconds late), then spin. With ``share`` (other timing threads
    in this process), the spin goes through ``os.sched_yield``, which lets go of the GIL at
    every turn, so that a worker finishing its inference is not kept from reading the clock;
    alone, it spins on the clock only (a yield can hand the core to another process for a
    whole time slice on a loaded machine)."""
    now = perf_counter_ns
    yield_cpu = (getattr(os, "sched_yield", None) or _yield_gil) if share else _spin
    while not stop.requested:
        left = due_ns - now()
        if left <= 0:
            return
        if left > 2_000_000:
            stop.wait(min((left - 1_000_000) / 1e9, 0.05))
        elif left > spin_ns:
            time.sleep((left - spin_ns) / 1e9)
        else:
            yield_cpu()


def timed_loop(
    call: Callable[[], Any],
    wait: Optional[Callable[[], Any]],
    recorder: Recorder,
    stop: StopSignal,
    deadline_ns: int,
    quota: int,
) -> None:
    """Time ``call`` (and ``wait``) until the deadline, the quota or a stop request.

    Runs at least one inference. ``wait`` is None for synchronous devices, so the loop does not
    even pay for a no-op call there. Records START and END per sample.
    """
    now = perf_counter_ns
    chunk = recorder.new_chunk()
    starts, ends = chunk[START], chunk[END]
    size = recorder.chunk_size
    i = 0
    written = 0
    t1 = now()
    if wait is None:
        while True:
            t0 = now()
            call()
            t1 = now()
            starts[i] = t0
            ends[i] = t1
            written += 1
            recorder.written = written
            i += 1
            if i == size:
                chunk = recorder.new_chunk()
                starts, ends = chunk[START], chunk[END]
                i = 0
            if t1 >= deadline_ns or written >= quota or stop.requested:
                break
    else:
        while True:
            t0 = now()
            call()
            wait()
            t1 = now()
            starts[i] = t0
            ends[i] = t1
            written += 1
            recorder.written = written
            i += 1
            if i == size:
                chunk = recorder.new_chunk()
                starts, ends = chunk[START], chunk[END]
                i = 0
            if t1 >= deadline_ns or written >= quota or stop.requested:
                break
    recorder.end_ns = t1


def device_timed_loop(
    call: Callable[[], Any],
    wait: Callable[[], Any],
    device_ns: Callable[[], int],
    recorder: Recorder,
    stop: StopSignal,
    deadline_ns: int,
    quota: int,
) -> None:
    """``timed_loop`` for a device that times itself (CUDA events): after the host's end reading,
    ``device_ns()`` reads the device's own time of that inference into the DEVICE column."""
    now = perf_counter_ns
    chunk = recorder.new_chunk()
    starts, ends, devices = chunk[START], chunk[END], chunk[DEVICE]
    size = recorder.chunk_size
    i = 0
    written = 0
    t1 = now()
    while True:
        t0 = now()
        call()
        wait()
        t1 = now()
        starts[i] = t0
        ends[i] = t1
        devices[i] = device_ns()
        written += 1
        recorder.written = written
        i += 1
        if i == size:
            chunk = recorder.new_chunk()
            starts, ends, devices = chunk[START], chunk[END], chunk[DEVICE]
            i = 0
        if t1 >= deadline_ns or written >= quota or stop.requested:
            break
    recorder.end_ns = t1


def pipeline_loop(
    preprocess: Optional[Callable[[Any], Any]],
    place: Callable[[Any], Any],
    infer_on: Callable[[Any], Any],
    wait: Optional[Callable[[], Any]],
    postprocess: Optional[Callable[[Any], Any]],
    raw_input: Any,
    recorder: Recorder,
    stop: StopSignal,
    deadline_ns: int,
    quota: int,
) -> None:
    """The loop for a model with a preprocess or postprocess step.

    Records four clock readings per sample (PRE_START, INFER_START, INFER_END, POST_END), so
    that the inference alone, each step and the whole end-to-end time all derive from one
    record, as NeuronPerf reports end-to-end and inference time separately.
    """
    now = perf_counter_ns
    chunk = recorder.new_chunk()
    pre, begin, end, post = chunk
    size = recorder.chunk_size
    i = 0
    written = 0
    t3 = now()
    while True:
        t0 = now()
        inputs = place(preprocess(raw_input) if preprocess is not None else raw_input)
        t1 = now()
        output = infer_on(inputs)
        if wait is not None:
            wait()
        t2 = now()
        if postprocess is not None:
            postprocess(output)
        t3 = now()
        pre[i] = t0
        begin[i] = t1
        end[i] = t2
        post[i] = t3
        written += 1
        recorder.written = written
        i += 1
        if i == size:
            chunk = recorder.new_chunk()
            pre, begin, end, post = chunk
            i = 0
        if t3 >= deadline_ns or written >= quota or stop.requested:
            break
    recorder.end_ns = t3


def served_loop(
    call: Callable[[], Any],
    wait: Optional[Callable[[], Any]],
    device_ns: Optional[Callable[[], int]],
    take: Callable[[], int],
    busy: List[int],
    slot: int,
    recorder: Recorder,
    stop: StopSignal,
    share: bool = True,
) -> None:
    """The open-loop worker: serve requests as the dispatcher releases them, until it says
    ``END_OF_REQUESTS`` or a stop is requested.

    ``take()`` blocks until the dispatcher releases a request and returns its scheduled time
    (ns). Requests are released a little ahead of time, so that a free worker is awake when one
    is due: it waits for the instant itself (``pace``), and a thread's wake-up never lands in
    the latency. The worker then times the inference as the closed loop does and stores the
    scheduled time beside START and END (and DEVICE when ``device_ns`` reads the device's own
    time), so that the latency from the scheduled time (queueing included) and the service
    time both derive from one record. ``busy[slot]`` holds the start of the inference in flight
    (0 while the worker waits for a request), for the watchdog: waiting is not a hung call.
    ``share``: other timing threads share this process (see ``pace``).
    """
    now = perf_counter_ns
    slack_timers()
    chunk = recorder.new_chunk()
    starts, ends, scheduled = chunk[START], chunk[END], chunk[SCHEDULED]
    devices = chunk[DEVICE] if device_ns is not None else None
    size = recorder.chunk_size
    i = 0
    written = 0
    t1 = now()
    while True:
        due = take()
        if due < 0 or stop.requested:
            break
        if due > now():
            pace(due, stop, share)
            if stop.requested:
                break
        t0 = now()
        busy[slot] = t0
        call()
        if wait is not None:
            wait()
        t1 = now()
        busy[slot] = 0
        scheduled[i] = due
        starts[i] = t0
        ends[i] = t1
        if devices is not None:
            devices[i] = device_ns()  # type: ignore[misc]
        written += 1
        recorder.written = written
        i += 1
        if i == size:
            chunk = recorder.new_chunk()
            starts, ends, scheduled = chunk[START], chunk[END], chunk[SCHEDULED]
            devices = chunk[DEVICE] if device_ns is not None else None
            i = 0
    recorder.end_ns = t1 if written else now()
