"""The timing loop and the store it writes into: the one place where the engine's own
overhead lands in every sample.

Each worker thread owns a ``Recorder`` of preallocated int64 chunks. The loop reads the clock,
runs one inference, waits for the device, reads the clock again and writes the difference into
the chunk: no Python object is kept per sample, nothing is logged, no lock is taken and nothing
waits on a consumer. A collector on another thread drains what was written so far, which is
safe without a lock because the loop publishes ``written`` only after the sample is stored, and
chunks are only ever appended.
"""

from __future__ import annotations

import threading
from time import perf_counter_ns
from typing import Any, Callable, List, Optional

import numpy as np

CHUNK_SIZE = 1 << 14


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
    """Latencies (ns) written by one timing thread and drained by one collector thread."""

    __slots__ = ("chunks", "chunk_size", "written", "read", "end_ns", "error")

    def __init__(self, chunk_size: int = CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self.chunks: List[Optional[np.ndarray]] = []
        self.written = 0
        self.read = 0
        self.end_ns = 0
        self.error: Optional[BaseException] = None

    def new_chunk(self) -> np.ndarray:
        chunk = np.empty(self.chunk_size, dtype=np.int64)
        self.chunks.append(chunk)
        return chunk

    def drain(self) -> np.ndarray:
        """Copy out every sample written since the last drain (collector thread only)."""
        written = self.written
        start = self.read
        if written <= start:
            return np.empty(0, dtype=np.int64)
        size = self.chunk_size
        parts = []
        position = start
        while position < written:
            index, offset = divmod(position, size)
            stop = min(written - index * size, size)
            chunk = self.chunks[index]
            if stop == size:
                # The writer is done with a full chunk: hand it over instead of copying it.
                self.chunks[index] = None
                parts.append(chunk[offset:] if offset else chunk)
            else:
                parts.append(chunk[offset:stop].copy())
            position = index * size + stop
        self.read = written
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


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
    even pay for a no-op call there.
    """
    now = perf_counter_ns
    chunk = recorder.new_chunk()
    size = recorder.chunk_size
    i = 0
    written = 0
    t1 = now()
    if wait is None:
        while True:
            t0 = now()
            call()
            t1 = now()
            chunk[i] = t1 - t0
            written += 1
            recorder.written = written
            i += 1
            if i == size:
                chunk = recorder.new_chunk()
                i = 0
            if t1 >= deadline_ns or written >= quota or stop.requested:
                break
    else:
        while True:
            t0 = now()
            call()
            wait()
            t1 = now()
            chunk[i] = t1 - t0
            written += 1
            recorder.written = written
            i += 1
            if i == size:
                chunk = recorder.new_chunk()
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
    recorders: "StageRecorders",
    stop: StopSignal,
    deadline_ns: int,
    quota: int,
) -> None:
    """The loop for a model with a preprocess or postprocess step.

    Records the inference alone (what ``timed_loop`` records) and, apart, each step and the
    whole end-to-end time, as NeuronPerf reports end-to-end and inference time separately.
    """
    now = perf_counter_ns
    size = recorders.inference.chunk_size
    chunks = [r.new_chunk() for r in recorders.all]
    infer_chunk, e2e_chunk, pre_chunk, post_chunk = chunks
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
        infer_chunk[i] = t2 - t1
        e2e_chunk[i] = t3 - t0
        pre_chunk[i] = t1 - t0
        post_chunk[i] = t3 - t2
        written += 1
        for recorder in recorders.all:
            recorder.written = written
        i += 1
        if i == size:
            infer_chunk, e2e_chunk, pre_chunk, post_chunk = [r.new_chunk() for r in recorders.all]
            i = 0
        if t3 >= deadline_ns or written >= quota or stop.requested:
            break
    for recorder in recorders.all:
        recorder.end_ns = t3


class StageRecorders:
    """The four recorders of the pipeline loop; ``inference`` is the one reported as latency."""

    STAGES = ("end_to_end", "preprocess", "postprocess")

    def __init__(self, chunk_size: int = CHUNK_SIZE) -> None:
        self.inference = Recorder(chunk_size)
        self.end_to_end = Recorder(chunk_size)
        self.preprocess = Recorder(chunk_size)
        self.postprocess = Recorder(chunk_size)
        self.all = (self.inference, self.end_to_end, self.preprocess, self.postprocess)
