"""Model copies and their workers: the closed-loop runner, in threads of this process.

A configuration runs ``copies`` copies of the model, each fed by ``workers_per_copy`` worker
threads that issue the next inference as soon as the last one returns (a closed loop). Copies
are threads here (``ThreadCopy``) or spawned processes (``procs.ProcessCopy``, which runs a
``ThreadCopy`` in its own process). Both offer the engine one life cycle:

    begin() -> ready() -> go(start_ns, deadline_ns, quotas) -> drain()... -> finished -> close()

Closing many copies shares one deadline (``procs.close_copies``): every copy is asked to stop
at once and all are waited on until the same instant, so a stop takes one grace, not one per
copy.

Each copy loads the compiled artifact onto its device (``backend.load``), takes one lane per
worker, warms up until its latency stream is stable, and reports ready; every worker then
sleeps until ``start_ns``, the instant the engine chose for all copies at once.

In open loop (``config.rate``) a copy also runs a dispatcher thread (``openloop.Dispatcher``)
at its share of the rate, and its workers serve the dispatcher's queue (``served_loop``)
instead of looping closed; ``request_end`` then ends the dispatching and lets the workers serve
what was sent, where ``request_stop`` ends everything within one inference.
"""

from __future__ import annotations

import threading
import time
from time import perf_counter_ns
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .backends.base import Lane, entered
from .copyjob import CopyJob, WarmupReport
from .errors import ConfigurationError, describe_error, error_kind, format_traceback
from .streams import Block
from .timing import (
    DEVICE, END, INFER_END, INFER_START, POST_END, PRE_START, SCHEDULED, START, Recorder,
    StopSignal, device_timed_loop, pipeline_loop, served_loop, sleep_until, timed_loop,
)
from .warmup import WarmupTracker

FOREVER = 1 << 62


def failure(exc: BaseException) -> ConfigurationError:
    """``exc`` as the failure of a configuration: its line, its kind, its traceback."""
    if isinstance(exc, ConfigurationError):
        return exc
    return ConfigurationError(describe_error(exc), error_kind(exc), format_traceback(exc))


def worker_quotas(samples: Optional[int], workers: int) -> Tuple[int, ...]:
    """Inferences each worker may run so that together they run exactly ``samples``."""
    if not samples:
        return (FOREVER,) * workers
    share, extra = divmod(samples, workers)
    return tuple(share + (1 if i < extra else 0) for i in range(workers))


class ThreadCopy:
    """One model copy in this process; its workers are threads."""

    def __init__(self, job: CopyJob, backend: Any, source: Any) -> None:
        self.job = job
        self.backend = backend
        self.source = source
        self.stop = StopSignal()
        self.report: Optional[WarmupReport] = None
        self.failure: Optional[ConfigurationError] = None
        self._setup_done = threading.Event()
        self._loaded = threading.Event()
        self._setup_thread: Optional[threading.Thread] = None
        self._workers: List[threading.Thread] = []
        self._prepared: Any = None
        self._lanes: List[Lane] = []
        self._steps: Optional[Tuple[Any, Any, Any]] = None
        self.recorders: List[Recorder] = []
        self._started_ns = 0
        self._end_column = END
        #: When the warm-up inference in flight began (0: none), and the warm-up's tracker.
        self._warm_since = 0
        # Decided as the copies are made, before any sets up: a sibling's load does not warm
        # this copy's first call, nor an earlier configuration's a first call that compiles.
        self._cold = source.loaded is None or backend.first_call_compiles()
        self._tracker: Optional[WarmupTracker] = None
        self._measure_timeout_ns = job.stop.timeout_ns(None)
        #: Open loop: the copy's dispatcher, its thread, and when each worker's request in
        #: flight began (0: waiting for one).
        self._dispatcher: Any = None
        self._dispatch_thread: Optional[threading.Thread] = None
        self._busy: List[int] = []

    @property
    def error(self) -> Optional[str]:
        return None if self.failure is None else str(self.failure)

    # -- life cycle -------------------------------------------------------------------
    def begin(self) -> None:
        self._setup_thread = threading.Thread(
            target=self._setup, name=f"copy{self.job.copy_index}-setup", daemon=True)
        self._setup_thread.start()

    @property
    def loaded(self) -> bool:
        """True once the model is on the device (warm-up has begun)."""
        return self._loaded.is_set()

    def ready(self, timeout: float) -> Optional[WarmupReport]:
        """The warm-up report once the copy is ready (None while it is not); raises the
        copy's failure."""
        if not self._setup_done.wait(timeout):
            return None
        if self.failure is not None:
            raise self.failure
        return self.report

    def go(self, start_ns: int, deadline_ns: int, quotas: Tuple[int, ...]) -> None:
        self._started_ns = start_ns
        work: Any = self._work
        if self.job.config.open_loop:
            from .openloop import Dispatcher

            quota = FOREVER if FOREVER in quotas else sum(quotas)
            self._dispatcher = Dispatcher.for_copy(self.job.config, self.job.copy_index, quota)
            self._busy = [0] * len(self._lanes)
            work = self._serve
        for index, lane in enumerate(self._lanes):
            worker = threading.Thread(
                target=work, args=(index, lane, start_ns, deadline_ns, quotas[index]),
                name=f"copy{self.job.copy_index}-worker{index}", daemon=True,
            )
            self._workers.append(worker)
            worker.start()
        if self._dispatcher is not None:
            self._dispatch_thread = threading.Thread(
                target=self._dispatch, args=(start_ns, deadline_ns),
                name=f"copy{self.job.copy_index}-dispatcher", daemon=True)
            self._dispatch_thread.start()

    def drain(self) -> Block:
        """Every sample recorded since the last drain, in absolute clock readings."""
        open_loop = self._dispatcher is not None
        blocks = [_block(recorder.drain(), open_loop) for recorder in self.recorders]
        for recorder in self.recorders:
            if recorder.error is not None and self.failure is None:
                self.failure = failure(recorder.error)
        return Block.concat(blocks)

    def drain_sent(self) -> np.ndarray:
        """The dispatcher's records since the last drain (``(2, n)``: when each request was
        due and when it was sent); empty in closed loop."""
        if self._dispatcher is None:
            return np.empty((2, 0), dtype=np.int64)
        return self._dispatcher.recorder.drain()

    @property
    def finished(self) -> bool:
        threads = [*self._workers, *([self._dispatch_thread] if self._dispatch_thread else [])]
        return bool(self._workers) and not any(t.is_alive() for t in threads)

    @property
    def end_ns(self) -> int:
        return max((r.end_ns for r in self.recorders), default=0)

    def oldest_inference_ns(self) -> Optional[int]:
        """When the oldest inference still running began (roughly: the end of its worker's last
        sample), for the engine's per-inference timeout; None when none runs."""
        if not self._started_ns or perf_counter_ns() < self._started_ns:
            return None  # the workers are waiting for the start instant
        if self._dispatcher is not None:  # a worker waiting for a request runs nothing
            began = [b for b in self._busy if b]
            return min(began) if began else None
        oldest = None
        for worker, recorder in zip(self._workers, self.recorders):
            if not worker.is_alive() or recorder.end_ns:
                continue
            began = recorder.last_end_ns(self._end_column)
            if began is None:
                began = recorder.end_ns or self._started_ns
            oldest = began if oldest is None else min(oldest, began)
        return oldest

    def inflight(self) -> Optional[Tuple[int, int]]:
        """``(began_ns, timeout_ns)`` of the oldest inference running now, with the timeout it
        is held to (the first inference's, warm-up's, or measuring's), for the engine's
        watchdog; None when none runs."""
        if not self._workers:
            began, tracker = self._warm_since, self._tracker
            if not began or tracker is None:
                return None
            if tracker.iterations == 0 and self._cold:
                return began, int(self.job.warmup.first_timeout_s * 1e9)
            return began, self.job.stop.timeout_ns(tracker.median_ns())
        oldest = self.oldest_inference_ns()
        return None if oldest is None else (oldest, self._measure_timeout_ns)

    def device_report(self) -> Dict[str, Any]:
        """The device's figures once measuring is over (peak memory...), {} if none."""
        if self._prepared is None or not self.finished:
            return {}
        try:
            return dict(self._prepared.report())
        except Exception:  # a figure is never worth failing a configuration for
            return {}

    def request_stop(self) -> None:
        self.stop.request()
        if self._dispatcher is not None:
            self._dispatcher.stop()

    def request_end(self) -> None:
        """End measuring gracefully: in open loop, no more requests are sent and the workers
        serve those already sent; in closed loop, a stop."""
        if self._dispatcher is not None:
            self._dispatcher.end()
        else:
            self.request_stop()

    def close(self, grace_s: float = 5.0) -> bool:
        """Stop the copy and wait at most ``grace_s`` for it; True when it ended."""
        return self.close_by(time.monotonic() + grace_s)

    def close_by(self, deadline: float) -> bool:
        """Stop the copy and wait for it until ``deadline`` (``time.monotonic``); True when its
        load, warm-up and every worker ended. One stuck in a device call that never returns is
        abandoned (its threads are daemons: they cannot keep the process alive)."""
        self.request_stop()
        threads = [t for t in (self._setup_thread, *self._workers, self._dispatch_thread)
                   if t is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        ended = not any(t.is_alive() for t in threads)
        if ended and self._prepared is not None:
            self._prepared.close()
        return ended

    # -- inside the copy ----------------------------------------------------------------
    def _setup(self) -> None:
        try:
            held = entered(self.backend.setup_guard(), lambda: self.stop.requested)
            if held is None:
                self.failure = ConfigurationError("stopped before this copy's setup began")
                return
            with held:
                self.report = self._load_and_warm_up()
        except BaseException as exc:  # the configuration fails; the run goes on
            self.failure = failure(exc)
        finally:
            self._setup_done.set()

    def _unless_stopped(self, what: str) -> None:
        if self.stop.requested:
            raise ConfigurationError(f"stopped before {what}")

    def _load_and_warm_up(self) -> WarmupReport:
        job = self.job
        began = time.perf_counter()
        self._unless_stopped("loading")
        prepared = self.backend.load(job.artifact, self.source, copy_index=job.copy_index,
                                     threads=job.threads)
        self._prepared = prepared
        self._lanes = []
        for worker in range(job.config.workers_per_copy):  # a CUDA graph capture each
            self._unless_stopped("its lanes were ready")
            self._lanes.append(prepared.lane(worker))
        if self.source.staged:
            self._steps = self.source.pipeline(job.config.batch_size)
        columns = 4 if self._steps else (3 if self._lanes[0].device_ns else 2)
        self._end_column = POST_END if self._steps else END
        if job.config.open_loop:  # START, END, [DEVICE,] SCHEDULED: a pipeline is timed whole
            columns, self._end_column = (3 if self._lanes[0].device_ns else 2) + 1, END
        self.recorders = [Recorder(columns) for _ in self._lanes]
        load_s = time.perf_counter() - began
        self._loaded.set()

        tracker = self._tracker = WarmupTracker(job.warmup)
        lane = self._lanes[0]
        one = self._one_inference(lane)
        with lane.context():
            while not self.stop.requested:
                t0 = self._warm_since = perf_counter_ns()
                one()
                t1 = perf_counter_ns()
                if tracker.record(t1 - t0, t1):
                    break
        for other in self._lanes[1:]:  # every lane's first call (its stream, its buffers)
            if self.stop.requested:
                break
            with other.context():
                self._warm_since = perf_counter_ns()
                self._one_inference(other)()
        self._warm_since = 0
        median = tracker.median_ns()
        self._measure_timeout_ns = job.stop.timeout_ns(median)
        loaded = self.source.loaded
        return WarmupReport(
            first_ns=tracker.first_ns or 0, iterations=tracker.iterations,
            stable=tracker.stable, duration_s=tracker.elapsed_s, load_s=load_s, median_ns=median,
            model=loaded.describe() if loaded is not None else {"source": job.model.source},
            device=self.backend.facts().to_dict(),
            inputs=self.source.input_facts(job.config.batch_size),
        )

    def _one_inference(self, lane: Lane):
        wait = lane.wait
        if self._steps is not None:
            pre, post, raw = self._steps

            def one() -> None:
                output = lane.infer_on(lane.place(pre(raw) if pre else raw))
                if wait is not None:
                    wait()
                if post is not None:
                    post(output)
            return one
        infer = lane.infer
        if wait is None:
            return infer

        def one_and_wait() -> None:
            infer()
            wait()
        return one_and_wait

    def _work(self, index: int, lane: Lane, start_ns: int, deadline_ns: int, quota: int) -> None:
        recorder = self.recorders[index]
        stop = self.stop
        try:
            with lane.context():
                sleep_until(start_ns, stop)
                if stop.requested:
                    recorder.end_ns = perf_counter_ns()
                    return
                if self._steps is not None:
                    pre, post, raw = self._steps
                    pipeline_loop(pre, lane.place, lane.infer_on, lane.wait, post, raw,
                                  recorder, stop, deadline_ns, quota)
                elif lane.device_ns is not None:
                    device_timed_loop(lane.infer, lane.wait, lane.device_ns, recorder, stop,
                                      deadline_ns, quota)
                else:
                    timed_loop(lane.infer, lane.wait, recorder, stop, deadline_ns, quota)
        except BaseException as exc:
            recorder.error = exc
            recorder.end_ns = perf_counter_ns()
            self.request_stop()

    def _serve(self, index: int, lane: Lane, start_ns: int, deadline_ns: int, quota: int) -> None:
        """An open-loop worker: the dispatcher's requests, served one at a time."""
        recorder = self.recorders[index]
        stop = self.stop
        try:
            with lane.context():
                sleep_until(start_ns, stop)
                if self._steps is not None:  # the pipeline is one request, timed whole
                    call, wait, device_ns = self._one_inference(lane), None, None
                else:
                    call, wait, device_ns = lane.infer, lane.wait, lane.device_ns
                config = self.job.config
                share = config.workers_per_copy > 1 or (config.copy_mode == "thread"
                                                        and config.copies > 1)
                served_loop(call, wait, device_ns, self._dispatcher.requests.get, self._busy,
                            index, recorder, stop, share)
        except BaseException as exc:
            recorder.error = exc
            recorder.end_ns = perf_counter_ns()
            self.request_stop()

    def _dispatch(self, start_ns: int, deadline_ns: int) -> None:
        try:
            self._dispatcher.run(start_ns, deadline_ns)
        except BaseException as exc:  # the configuration fails with the dispatcher's error
            if self.recorders and self.recorders[0].error is None:
                self.recorders[0].error = exc
            self.request_stop()


def _block(columns: np.ndarray, open_loop: bool = False) -> Block:
    """A recorder's drained columns as a Block (absolute clock readings)."""
    if open_loop:
        inner = _block(columns[:-1])
        return Block(inner.start_ns, inner.end_ns, device_ns=inner.device_ns,
                     scheduled_ns=columns[SCHEDULED])
    rows = columns.shape[0]
    if rows == 4:
        return Block(columns[INFER_START], columns[INFER_END], pre_start_ns=columns[PRE_START],
                     post_end_ns=columns[POST_END])
    if rows == 3:
        return Block(columns[START], columns[END], device_ns=columns[DEVICE])
    return Block(columns[START], columns[END])
