"""Processes of latency-tui's own (the engine host, model copies): how they start, how they stop,
and why none can outlive the process that started it.

``Child`` is the one spawn / stop / terminate helper. It starts a spawned process with its
environment in place from the first instruction (``Backend.process_env``: the variables are in
the child's environment at exec, before its interpreter imports anything, and set again first
thing in the bootstrap), ignores ^C in the child (the parent decides what stops), and ties the
child's life to its parent twice: a parent-death signal (Linux ``prctl``) and a watchdog thread
that ends the child when its parent is gone. ``stop`` escalates within a stated bound: ask,
then SIGTERM, then SIGKILL.

``ProcessCopy`` runs a ``copies.ThreadCopy`` in such a process and forwards its samples over a
pipe; the engine drives it through the same life cycle as a thread copy.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from time import perf_counter_ns
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .copies import ThreadCopy, failure
from .copyjob import CopyJob, WarmupReport
from .errors import ConfigurationError
from .streams import Block

#: How often a copy process forwards its samples; a stop message wakes it at once regardless.
FORWARD_S = 0.1
#: A copy that sends nothing for this long is stuck, whatever its inference's timeout says.
SILENCE_S = 30.0
#: How long a stopped child may take to end by itself before it is terminated, then killed.
STOP_GRACE_S = 2.0
TERMINATE_GRACE_S = 1.0

_ENVIRON_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _bootstrap(target: Callable[..., Any], args: Tuple[Any, ...], env: Dict[str, str],
               parent: int, death_signal: int) -> None:
    """First code of every child: its environment, its tie to the parent, then ``target``."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), death_signal)

    threading.Thread(target=watch, name="latency-tui-parent-watch", daemon=True).start()
    target(*args)


class Child:
    """A spawned process that ends when told to, within a bound, and when its parent dies."""

    def __init__(self, target: Callable[..., Any], args: Tuple[Any, ...], *, name: str,
                 env: Optional[Dict[str, str]] = None, daemon: bool = True,
                 death_signal: int = signal.SIGKILL) -> None:
        context = multiprocessing.get_context("spawn")
        self.env = dict(env or {})
        self.process = context.Process(
            target=_bootstrap, args=(target, args, self.env, os.getpid(), int(death_signal)),
            name=name, daemon=daemon,
        )

    def start(self) -> None:
        # The environment is the parent's at spawn: set it around the start (under a lock, as
        # other threads may spawn too), so that the child's interpreter starts with it.
        with _ENVIRON_LOCK:
            saved = {key: os.environ.get(key) for key in self.env}
            os.environ.update(self.env)
            try:
                self.process.start()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    @property
    def exitcode(self) -> Optional[int]:
        return self.process.exitcode

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid

    def join(self, timeout: Optional[float] = None) -> None:
        self.process.join(timeout)

    def stop(self, request: Optional[Callable[[], None]] = None, *,
             grace_s: float = STOP_GRACE_S) -> str:
        """End the child: ``request()`` (a polite message), then SIGTERM after ``grace_s``,
        then SIGKILL a second later. Returns how it ended: "exited", "terminated", "killed"."""
        return stop_children([self], [time.monotonic() + grace_s], [request])[0]


def stop_children(children: Sequence[Child], deadlines: Sequence[float],
                  requests: Optional[Sequence[Optional[Callable[[], None]]]] = None) -> List[str]:
    """End many children together: each is asked (``requests``), all are waited on until
    their ``deadlines`` (``time.monotonic``; one shared instant as a rule), then what is left
    is sent SIGTERM at once and given ``TERMINATE_GRACE_S`` together, then SIGKILL. The
    whole takes the latest deadline plus at most twice ``TERMINATE_GRACE_S``, however many
    children there are. Returns how each ended: "exited", "terminated" or "killed"."""
    processes = [child.process for child in children]
    for process, request in zip(processes, requests or [None] * len(processes)):
        if request is not None and process.pid is not None and process.is_alive():
            try:
                request()
            except (OSError, ValueError, EOFError):
                pass
    how = ["exited"] * len(processes)
    for process, deadline in zip(processes, deadlines):
        if process.pid is not None:
            process.join(max(0.0, deadline - time.monotonic()))
    for verdict in ("terminated", "killed"):
        left = [i for i, p in enumerate(processes) if p.pid is not None and p.is_alive()]
        for i in left:
            how[i] = verdict
            if verdict == "terminated":
                processes[i].terminate()
            else:
                processes[i].kill()
        until = time.monotonic() + TERMINATE_GRACE_S
        for i in left:
            processes[i].join(max(0.0, until - time.monotonic()))
    return how


# -- copies as processes ------------------------------------------------------------------


def _copy_main(conn: Any, job: CopyJob) -> None:
    """A copy process: a ThreadCopy driven over a pipe.

    A listener thread reads the parent's messages as they come, so that a stop reaches the
    copy's workers within one inference, in warm-up or measuring. It is the pipe's only reader,
    and it ends on "stop" or when the parent closes its end; the pipe is closed only after it
    has, so that no read ever meets a closed handle at shutdown.
    """
    from .backends import load_class
    from .source import ModelSource

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
                elif message[0] == "end":  # open loop: send no more, serve what was sent
                    for each in copies:
                        each.request_end()
                else:
                    break
        except (EOFError, OSError):  # the parent is gone
            pass
        stop()

    def send(message: tuple) -> None:
        try:
            conn.send(message)
        except (OSError, EOFError, ValueError):
            stop()

    listener = threading.Thread(target=listen, name="copy-listener", daemon=True)
    listener.start()
    told_loaded = False
    try:
        backend = load_class(job.backend)(job.config.device_options, job.config.device)
        backend.configure_process(job.copy_index, job.threads)
        copy = ThreadCopy(job, backend, ModelSource(job.model, job.inputs))
        copies.append(copy)
        if stopped.is_set():
            copy.request_stop()
        copy.begin()
        report = None
        while report is None:
            report = copy.ready(FORWARD_S)
            if copy.loaded and not told_loaded:
                told_loaded = True
                send(("loaded",))
            send(("alive", copy.inflight(), perf_counter_ns()))
        send(("ready", report))
        started.wait()
        if go_args and not stopped.is_set():
            if job.config.open_loop:  # the dispatcher gets the GIL within 0.5 ms
                from .openloop import SWITCH_INTERVAL_S

                sys.setswitchinterval(SWITCH_INTERVAL_S)
            copy.go(*go_args[0])
            while not copy.finished:
                stopped.wait(FORWARD_S)
                send(("samples", copy.drain(), copy.inflight(), perf_counter_ns(),
                      copy.drain_sent()))
            send(("samples", copy.drain(), None, perf_counter_ns(), copy.drain_sent()))
            if copy.failure is not None:
                send(("failed", copy.failure))
            send(("report", copy.device_report()))
            send(("done", copy.end_ns))
    except BaseException as exc:
        send(("failed", failure(exc)))
    finally:
        for each in copies:
            each.close(grace_s=1.0)
        listener.join(5.0)
        if not listener.is_alive():
            conn.close()


class ProcessCopy:
    """One model copy in a spawned process of its own."""

    def __init__(self, job: CopyJob) -> None:
        self.job = job
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._child = Child(_copy_main, (child_conn, job), name=f"latency-tui-copy{job.copy_index}",
                            env=job.env)
        self._child_conn = child_conn
        self.report: Optional[WarmupReport] = None
        self.failure: Optional[ConfigurationError] = None
        self.loaded = False
        self._device_report: Dict[str, Any] = {}
        self.end_ns = 0
        self._done = False
        self._pending: List[Block] = []
        self._pending_sent: List[np.ndarray] = []
        #: When the parent last heard from the copy, and what the copy said was in flight.
        self._heard_ns = 0
        self._inflight: Optional[Tuple[int, int, int]] = None

    @property
    def error(self) -> Optional[str]:
        return None if self.failure is None else str(self.failure)

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid

    def begin(self) -> None:
        self._child.start()
        self._child_conn.close()
        self._heard_ns = perf_counter_ns()

    def ready(self, timeout: float) -> Optional[WarmupReport]:
        if self.report is None and self.failure is None:
            self._receive(timeout)
        if self.failure is not None:
            raise self.failure
        return self.report

    def go(self, start_ns: int, deadline_ns: int, quotas: Tuple[int, ...]) -> None:
        self._send(("go", start_ns, deadline_ns, quotas))

    def drain(self) -> Block:
        self._receive(0)
        pending, self._pending = self._pending, []
        return Block.concat(pending)

    def drain_sent(self) -> np.ndarray:
        """The copy's dispatch records received since the last call (open loop)."""
        pending, self._pending_sent = self._pending_sent, []
        return np.concatenate(pending, axis=1) if pending else np.empty((2, 0), dtype=np.int64)

    @property
    def finished(self) -> bool:
        if not self._done:
            self._receive(0)
        return self._done

    def inflight(self) -> Optional[Tuple[int, int]]:
        """What the copy last said was in flight, ``(began_ns, timeout_ns)``; and, when it has
        gone silent (a process stuck in a call that holds the GIL says nothing at all), the
        silence itself, held to the same timeout (or the first inference's)."""
        if self._done:
            return None
        reported = self._inflight
        if reported is not None:
            # As old as the copy's report: what it said held when it said it, no longer.
            began, timeout, said_at = reported
            reported = (began + perf_counter_ns() - said_at, timeout)
        timeout = reported[1] if reported else int(self.job.warmup.first_timeout_s * 1e9)
        silence = (self._heard_ns, max(timeout, int(SILENCE_S * 1e9)))
        if reported is None:
            return silence
        return min(reported, silence, key=lambda pair: pair[0] + pair[1])

    def device_report(self) -> Dict[str, Any]:
        return dict(self._device_report)

    def request_stop(self) -> None:
        self._send(("stop",))

    def request_end(self) -> None:
        """Open loop: the copy sends no more requests and serves those it sent (closed loop:
        the copy stops)."""
        self._send(("end",) if self.job.config.open_loop else ("stop",))

    @property
    def child(self) -> Child:
        return self._child

    def close(self, grace_s: float = STOP_GRACE_S) -> bool:
        return close_copies([self], time.monotonic() + grace_s)[0]

    def release(self) -> None:
        """Close the parent's end of the pipe, once the process has ended."""
        self._conn.close()

    def _send(self, message: tuple) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            pass

    def _receive(self, timeout: float) -> None:
        try:
            while self._conn.poll(timeout):
                timeout = 0
                kind, *payload = self._conn.recv()
                self._heard_ns = perf_counter_ns()
                if kind == "loaded":
                    self.loaded = True
                elif kind == "ready":
                    self.report, self.loaded = payload[0], True
                elif kind == "alive":
                    inflight, said_at = payload
                    self._inflight = None if inflight is None else (*inflight, said_at)
                elif kind == "samples":
                    block, inflight, said_at, sent = payload
                    self._inflight = None if inflight is None else (*inflight, said_at)
                    if block.size:
                        self._pending.append(block)
                    if sent.shape[1]:
                        self._pending_sent.append(sent)
                elif kind == "report":
                    self._device_report = payload[0]
                elif kind == "failed":
                    self.failure = self.failure or payload[0]
                elif kind == "done":
                    self.end_ns = payload[0]
                    self._done = True
        except (EOFError, OSError):
            if not self._done:
                self._child.join(1.0)
                code = self._child.exitcode
                self.failure = self.failure or ConfigurationError(
                    f"copy process {self.job.copy_index} died (exit code {code})", "copy_died")
                self.end_ns = self.end_ns or perf_counter_ns()
                self._done = True


def close_copies(copies: Sequence[Any], deadline: float, *, exiting_s: float = 0.0) -> List[bool]:
    """Close copies, thread or process, by one deadline (``time.monotonic``): every copy is
    asked to stop at once, all are waited on until that instant, then every process copy still
    running is terminated together (then killed) and every thread copy still running is
    abandoned. A copy that has finished is only exiting: it may take ``exiting_s`` from now,
    whatever the deadline. True for each copy that ended by itself."""
    for each in copies:
        each.request_stop()
    now = time.monotonic()
    deadlines = [max(deadline, now + exiting_s) if each.finished else deadline for each in copies]
    ended = [True] * len(copies)
    procs = [i for i, each in enumerate(copies) if isinstance(each, ProcessCopy)]
    hows = stop_children([copies[i].child for i in procs], [deadlines[i] for i in procs])
    for i, how in zip(procs, hows):
        copies[i].release()
        ended[i] = how == "exited"
    for i, each in enumerate(copies):
        if not isinstance(each, ProcessCopy):
            ended[i] = each.close_by(deadlines[i])
    return ended
