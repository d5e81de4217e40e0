"""Model copies and their workers: the closed-loop runner.

A configuration runs ``copies`` copies of the model, each fed by ``workers_per_copy`` worker
threads that issue the next inference as soon as the last one returns (a closed loop). Copies
are threads in this process (``ThreadCopy``) or spawned processes (``ProcessCopy``), the way
copies scale past the GIL and the way a Neuron copy binds to its own core. Both kinds offer the
engine one life cycle:

    begin() -> ready() -> go(start_ns, deadline_ns, quotas) -> drain()... -> finished -> close()

Each copy loads (process) or receives (thread) the model, prepares it on the device, warms up
until its latency stream is stable, and reports ready; measuring then starts in every copy at
once. A process copy runs a ``ThreadCopy`` inside its own process and forwards what it drains
over a pipe.
"""

from __future__ import annotations

import copy as _copy
import os
import multiprocessing
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import ConfigurationError
from .specs import InputSpec, ModelSpec, RunConfig, WarmupPolicy
from .timing import Recorder, StageRecorders, StopSignal, pipeline_loop, timed_loop
from .warmup import WarmupTracker

FOREVER_NS = 1 << 62


@dataclass(frozen=True)
class CopyJob:
    """What one copy needs; plain data, so that it pickles into a spawned process."""

    model: ModelSpec
    inputs: InputSpec
    config: RunConfig
    copy_index: int
    warmup: WarmupPolicy
    threads: Optional[int]


@dataclass(frozen=True)
class WarmupReport:
    first_ns: int
    iterations: int
    stable: bool
    duration_s: float
    model: Dict[str, Any] = field(default_factory=dict, hash=False)
    device: Dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass
class Drained:
    """Samples a copy produced since its last drain: the inference latencies and, with a
    preprocess or postprocess step, each stage's."""

    inference: np.ndarray
    stages: Dict[str, np.ndarray] = field(default_factory=dict)


def describe_error(exc: BaseException) -> str:
    """One line for a failed configuration: the exception type and message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def usable_cpus() -> int:
    """CPUs this process may run on (affinity, taskset, a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_threads(copies: int, cpus: Optional[int] = None) -> int:
    return max(1, (cpus or usable_cpus()) // max(copies, 1))


class ThreadCopy:
    """One model copy in this process; its workers are threads."""

    def __init__(self, job: CopyJob, backend: Any, loaded: Any = None) -> None:
        self.job = job
        self.backend = backend
        self.loaded = loaded
        self.stop = StopSignal()
        self.report: Optional[WarmupReport] = None
        self.error: Optional[str] = None
        self._setup_done = threading.Event()
        self._workers: List[threading.Thread] = []
        self._prepared: Any = None
        self._pipeline: Optional[tuple] = None
        workers = job.config.workers_per_copy
        self._staged = bool(job.model.preprocess or job.model.postprocess)
        self._stage_recorders = [StageRecorders() for _ in range(workers)] if self._staged else []
        self.recorders: List[Recorder] = (
            [s.inference for s in self._stage_recorders] if self._staged
            else [Recorder() for _ in range(workers)]
        )

    # -- life cycle -------------------------------------------------------------------
    def begin(self) -> None:
        threading.Thread(target=self._setup, name=f"copy{self.job.copy_index}-setup",
                         daemon=True).start()

    def ready(self, timeout: float) -> Optional[WarmupReport]:
        if not self._setup_done.wait(timeout):
            return None
        if self.error is not None:
            raise ConfigurationError(self.error)
        return self.report

    def go(self, start_ns: int, deadline_ns: int, quotas: Tuple[int, ...]) -> None:
        for index in range(self.job.config.workers_per_copy):
            worker = threading.Thread(
                target=self._work, args=(index, deadline_ns, quotas[index]),
                name=f"copy{self.job.copy_index}-worker{index}", daemon=True,
            )
            self._workers.append(worker)
            worker.start()

    def drain(self) -> Drained:
        inference = _concat([r.drain() for r in self.recorders])
        stages = {}
        if self._staged:
            for name in StageRecorders.STAGES:
                stages[name] = _concat([getattr(s, name).drain() for s in self._stage_recorders])
        for recorder in self.recorders:
            if recorder.error is not None and self.error is None:
                self.error = describe_error(recorder.error)
        return Drained(inference, stages)

    @property
    def finished(self) -> bool:
        return bool(self._workers) and not any(w.is_alive() for w in self._workers)

    @property
    def end_ns(self) -> int:
        return max((r.end_ns for r in self.recorders), default=0)

    def request_stop(self) -> None:
        self.stop.request()

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait for the workers to end, at most ``timeout`` seconds in all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.request_stop()
        self.join(5.0)
        if self._prepared is not None:
            self._prepared.close()

    # -- inside the copy ----------------------------------------------------------------
    def _setup(self) -> None:
        try:
            self.report = self._prepare_and_warm_up()
        except BaseException as exc:  # the configuration fails; the run goes on
            self.error = describe_error(exc)
            self.traceback = traceback.format_exc()
        finally:
            self._setup_done.set()

    def _prepare_and_warm_up(self) -> WarmupReport:
        from .inputs import build_inputs
        from .models import load_callable, load_model

        job = self.job
        loaded = self.loaded if self.loaded is not None else load_model(job.model)
        module = loaded.module
        if job.copy_index > 0 and self.loaded is not None:
            module = _independent_copy(module)
        inputs = build_inputs(loaded, job.inputs, job.config.batch_size)
        prepared = self.backend.prepare(
            module, inputs, batch_size=job.config.batch_size, copy_index=job.copy_index,
            threads=job.threads,
        )
        self._prepared = prepared
        if self._staged:
            model = job.model
            pre = load_callable(model.preprocess, "model.preprocess") if model.preprocess else None
            post = load_callable(model.postprocess, "model.postprocess") if model.postprocess else None
            self._pipeline = (pre, post, inputs)
        tracker = WarmupTracker(job.warmup)
        one = self._one_inference(prepared)
        with prepared.thread_context():
            while not self.stop.requested:
                t0 = perf_counter_ns()
                one()
                t1 = perf_counter_ns()
                if tracker.record(t1 - t0, t1):
                    break
        return WarmupReport(
            first_ns=tracker.first_ns or 0, iterations=tracker.iterations,
            stable=tracker.stable, duration_s=tracker.elapsed_s,
            model=loaded.describe(), device=_facts(self.backend),
        )

    def _one_inference(self, prepared: Any):
        wait = None if prepared.synchronous else prepared.wait
        if self._pipeline is not None:
            pre, post, raw = self._pipeline

            def one() -> None:
                output = prepared.infer_on(prepared.place(pre(raw) if pre else raw))
                if wait is not None:
                    wait()
                if post is not None:
                    post(output)
            return one
        infer = prepared.infer
        if wait is None:
            return infer

        def one_and_wait() -> None:
            infer()
            wait()
        return one_and_wait

    def _work(self, index: int, deadline_ns: int, quota: int) -> None:
        prepared = self._prepared
        wait = None if prepared.synchronous else prepared.wait
        recorder = self.recorders[index]
        try:
            with prepared.thread_context():
                if self._pipeline is None:
                    timed_loop(prepared.infer, wait, recorder, self.stop, deadline_ns, quota)
                else:
                    pre, post, raw = self._pipeline
                    pipeline_loop(pre, prepared.place, prepared.infer_on, wait, post, raw,
                                  self._stage_recorders[index], self.stop, deadline_ns, quota)
        except BaseException as exc:
            recorder.error = exc
            recorder.end_ns = perf_counter_ns()
            self.stop.request()


def _facts(backend: Any) -> Dict[str, Any]:
    facts = backend.facts()
    return {"device": facts.device, "name": facts.name, "timing": facts.timing, **facts.details}


def _independent_copy(module: Any) -> Any:
    """A copy of the model's weights for another copy; shared if the model cannot be copied."""
    try:
        return _copy.deepcopy(module)
    except Exception:
        return module


def _concat(parts: List[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# -- copies as processes ------------------------------------------------------------------

#: How often a copy process forwards its samples; a stop message wakes it at once regardless.
_POLL_S = 0.1


def _process_main(conn: Any, job: CopyJob) -> None:
    """Entry point of a spawned copy process: a ThreadCopy driven over a pipe.

    A listener thread reads the parent's messages as they come, so that a stop reaches the
    copy's workers within one inference, in warm-up or measuring, and a parent that dies ends
    the copy instead of leaving it running.
    """
    # ^C in the terminal reaches every process of the group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .backends import get_backend

    started = threading.Event()
    stopped = threading.Event()
    go_args: List[tuple] = []
    copies: List[ThreadCopy] = []

    def stop() -> None:
        stopped.set()
        for each in copies:
            each.request_stop()
        started.set()

    def listen() -> None:
        try:
            while True:
                message = conn.recv()
                if message[0] == "go":
                    go_args.append(message[1:])
                    started.set()
                else:
                    stop()
        except (EOFError, OSError):  # the parent is gone
            stop()

    def send(message: tuple) -> None:
        try:
            conn.send(message)
        except (OSError, EOFError):
            stop()

    threading.Thread(target=listen, name="copy-listener", daemon=True).start()
    try:
        backend = get_backend(job.config.device, job.config.device_options)
        backend.configure_process(job.copy_index, job.threads)
        copy = ThreadCopy(job, backend)
        copies.append(copy)
        if stopped.is_set():
            copy.request_stop()
        copy.begin()
        report = None
        while report is None:
            report = copy.ready(_POLL_S)
        send(("ready", report))
        started.wait()
        if stopped.is_set() or not go_args:
            return
        copy.go(*go_args[0])
        while not copy.finished:
            copy.join(_POLL_S)
            send(("samples", copy.drain()))
        send(("samples", copy.drain()))
        if copy.error is not None:
            send(("failed", copy.error))
        send(("done", copy.end_ns))
    except ConfigurationError as exc:
        send(("failed", str(exc)))
    except BaseException as exc:
        send(("failed", describe_error(exc)))
    finally:
        for each in copies:
            each.request_stop()
            each.join(5.0)
        conn.close()


class ProcessCopy:
    """One model copy in a spawned process of its own."""

    def __init__(self, job: CopyJob) -> None:
        self.job = job
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_process_main, args=(child_conn, job),
            name=f"latency-tui-copy{job.copy_index}", daemon=True,
        )
        self._child_conn = child_conn
        self.report: Optional[WarmupReport] = None
        self.error: Optional[str] = None
        self.end_ns = 0
        self._done = False
        self._pending: List[Drained] = []

    def begin(self) -> None:
        self._process.start()
        self._child_conn.close()

    def ready(self, timeout: float) -> Optional[WarmupReport]:
        if self.report is None and self.error is None:
            self._receive(timeout)
        if self.error is not None:
            raise ConfigurationError(self.error)
        return self.report

    def go(self, start_ns: int, deadline_ns: int, quotas: Tuple[int, ...]) -> None:
        self._conn.send(("go", start_ns, deadline_ns, quotas))

    def drain(self) -> Drained:
        self._receive(0)
        pending, self._pending = self._pending, []
        stages: Dict[str, List[np.ndarray]] = {}
        for drained in pending:
            for name, values in drained.stages.items():
                stages.setdefault(name, []).append(values)
        return Drained(
            _concat([d.inference for d in pending]),
            {name: _concat(parts) for name, parts in stages.items()},
        )

    @property
    def finished(self) -> bool:
        if not self._done:
            self._receive(0)
        return self._done

    def request_stop(self) -> None:
        try:
            self._conn.send(("stop",))
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._process.is_alive():
            self.request_stop()
            self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()

    def _receive(self, timeout: float) -> None:
        try:
            while self._conn.poll(timeout):
                timeout = 0
                kind, *payload = self._conn.recv()
                if kind == "ready":
                    self.report = payload[0]
                elif kind == "samples":
                    self._pending.append(payload[0])
                elif kind == "failed":
                    self.error = payload[0]
                elif kind == "done":
                    self.end_ns = payload[0]
                    self._done = True
        except (EOFError, OSError):
            if not self._done:
                self._process.join(1.0)
                code = self._process.exitcode
                self.error = self.error or f"copy process {self.job.copy_index} died (exit code {code})"
                self.end_ns = self.end_ns or perf_counter_ns()
                self._done = True


def make_copies(jobs: List[CopyJob], backend: Any, loaded: Any, mode: str) -> list:
    if mode == "process":
        return [ProcessCopy(job) for job in jobs]
    return [ThreadCopy(job, backend, loaded) for job in jobs]


def worker_quotas(samples: Optional[int], workers: int) -> Tuple[int, ...]:
    """Inferences each worker may run so that together they run exactly ``samples``."""
    if not samples:
        return (FOREVER_NS,) * workers
    share, extra = divmod(samples, workers)
    return tuple(share + (1 if i < extra else 0) for i in range(workers))
