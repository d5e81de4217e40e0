"""A run started on its own: the engine in a thread of this process, or in a process of its own,
behind one handle.

Why a process: a view that draws in Python holds the GIL while it draws, and with the engine in
the same process every millisecond of drawing is a millisecond a thread-mode timing loop cannot
run (measured: about 9 % of the MLP preset's throughput at two redraws a second). In a child
process the engine has a GIL of its own; the view costs it only a share of a core. It also keeps
torch out of the view's process, keeps what a model prints off the screen (``log_path``), and a
model that crashes its process takes the run down, not the view.

``RunHandle`` is the same for both: ``stop()`` asks (the engine ends the configuration in
progress within one inference, or within its stop grace when a device call hangs), and with a
grace kills the run if it has not ended by then; ``kill()`` ends it now without waiting (a
process run is terminated, and its copies die with it; a thread cannot be killed, so there it
only asks: ``killable`` says which); ``wait()`` blocks with a timeout. Events reach the sink from
the handle's own thread, as they happen. A process run writes the traceback of every failed
configuration, and of a crash, to its log (``engine.log`` in the TUI).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from .errors import UserError, describe_error, format_traceback
from .events import ConfigFinished, RunFinished, Sink
from .measurement import ConfigResult
from .procs import Child
from .specs import RunPlan
from .strategies import Strategy

ISOLATIONS = ("thread", "process")
#: How the engine's process reports the end of its run.
_DONE, _USER_ERROR, _CRASH = "done", "user-error", "crash"


class EngineProcessError(RuntimeError):
    """The engine failed, or its process died, before the run ended."""


class RunHandle:
    """A run in progress. ``results`` and ``error`` are set once ``done``."""

    #: Whether ``kill`` ends the run at once (a process), or can only ask (a thread).
    killable = False

    def __init__(self) -> None:
        self.results: Tuple[ConfigResult, ...] = ()
        self.error: Optional[BaseException] = None
        #: When (``time.monotonic``) a stop with a grace kills the run, if it has not ended.
        self.kill_at: Optional[float] = None
        #: True once ``kill`` was called (by the caller, or by a stop's grace running out).
        self.killed = False
        self._done = threading.Event()
        self._stop_requested = False

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the run ends, at most ``timeout`` seconds; True when it has."""
        return self._done.wait(timeout)

    def stop(self, grace_s: Optional[float] = None) -> None:
        """Ask the run to stop; with ``grace_s``, ``kill`` it if it has not ended by then."""
        self._stop_requested = True
        self._request_stop()
        if grace_s is not None:
            at = time.monotonic() + max(0.0, grace_s)
            if self.kill_at is None or at < self.kill_at:  # a later, shorter grace wins
                self.kill_at = at
            timer = threading.Timer(grace_s, lambda: None if self.done else self.kill())
            timer.daemon = True
            timer.start()

    def kill(self) -> None:
        """End the run now, without waiting: what finished was already reported; nothing keeps
        running (a thread run can only be asked)."""
        self._stop_requested = True
        self.killed = True
        self.kill_at = min(self.kill_at or time.monotonic(), time.monotonic())
        self._request_stop()

    def _request_stop(self) -> None:
        raise NotImplementedError


class ThreadRun(RunHandle):
    """The engine in a daemon thread of this process (the command line's way)."""

    def __init__(self, plan: RunPlan, sink: Sink, strategy: Optional[Strategy] = None,
                 **engine_options: Any) -> None:
        super().__init__()
        from .engine import Engine

        self.engine = Engine(plan, sink, **engine_options)
        self._strategy = strategy
        self._thread = threading.Thread(target=self._work, name="latency-tui-engine", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self.results = self.engine.run(self._strategy)
        except BaseException as exc:  # surfaced through the handle
            self.error = exc
        finally:
            self._done.set()

    def _request_stop(self) -> None:
        self.engine.stop()

    # kill() is stop() here: a thread cannot be killed. A device call that never returns is
    # abandoned by the engine's stop grace, and the thread is a daemon: it cannot keep the
    # process alive.


class _PipeSink:
    """The engine's sink in its own process: events queue up locally (the engine never waits)
    and a feeder thread sends them down the pipe, in order."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._queue: "queue_module.SimpleQueue[Any]" = queue_module.SimpleQueue()
        self._feeder = threading.Thread(target=self._feed, name="latency-tui-feeder",
                                         daemon=True)
        self._feeder.start()

    def __call__(self, item: Any) -> None:
        self._queue.put(item)

    def _feed(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            try:
                self._conn.send(item)
            except (OSError, EOFError, ValueError):  # the view is gone: nobody to tell
                return

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(_CLOSE)
        self._feeder.join(timeout)


_CLOSE = object()


def _host_main(plan: RunPlan, conn: Any, strategy: Optional[Strategy], log: Optional[str]) -> None:
    """The engine's process: run the plan, send every event and then the outcome; stop when
    the view says so or goes away."""
    if log:  # what the model and libraries print must not land on the view's screen
        with open(log, "a", encoding="utf-8") as handle:
            os.dup2(handle.fileno(), 1)
            os.dup2(handle.fileno(), 2)
    from .engine import Engine

    pipe = _PipeSink(conn)

    def sink(item: Any) -> None:
        if log and isinstance(item, ConfigFinished) and item.result.status == "failed":
            _log_failure(item.index, item.result)
        pipe(item)

    engine = Engine(plan, sink)

    def listen() -> None:  # "stop", or the view's end of the pipe closing: end the run
        try:
            conn.recv()
        except (EOFError, OSError):
            pass
        engine.stop()

    threading.Thread(target=listen, name="latency-tui-stop", daemon=True).start()
    try:
        results = engine.run(strategy)
    except UserError as exc:
        sink((_USER_ERROR, str(exc), None))
    except BaseException as exc:  # reported to the view, which shows it as a notice
        details = format_traceback(exc)
        if log:
            _log(f"the engine failed: {describe_error(exc)}", details)
        sink((_CRASH, describe_error(exc), details))
    else:
        sink((_DONE, results, None))
    pipe.close()


def _log_failure(index: int, result: ConfigResult) -> None:
    """A failed configuration in the engine's log, with its traceback (the session has it too)."""
    _log(f"configuration {index + 1} ({result.config.label}) failed "
         f"[{result.error_kind or 'error'}]: {result.error}",
         result.traceback or "(no traceback: the engine ended it, no exception was raised)")


def _log(line: str, details: Optional[str]) -> None:
    """One entry of the engine's log (its stderr: ``log_path``)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        sys.stderr.write(f"{stamp} latency-tui: {line}\n{(details or '').rstrip()}\n\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # the log is gone: the session still has it
        pass


class ProcessRun(RunHandle):
    """The engine in a spawned process of its own (the TUI's way), its events relayed.

    One duplex pipe carries the events up and the stop request down: no queue, no shared
    value, so no named semaphore that a killed terminal could leave behind in /dev/shm.
    """

    killable = True
    #: After the run's outcome, how long the process may take to exit by itself before it is
    #: terminated; once a stop was asked for, the user is waiting: much less.
    EXIT_GRACE_S = 5.0
    STOPPED_EXIT_GRACE_S = 0.5

    def __init__(self, plan: RunPlan, sink: Sink, strategy: Optional[Strategy] = None, *,
                 log_path: Optional[Path] = None) -> None:
        super().__init__()
        self.sink = sink
        self.log_path = log_path
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe(duplex=True)
        self._send_lock = threading.Lock()
        self._child = Child(_host_main, (plan, child_conn, strategy,
                                         str(log_path) if log_path else None),
                            name="latency-tui-engine", daemon=False, death_signal=signal.SIGTERM)
        with real_stdio():
            self._child.start()
        child_conn.close()
        self._relay_thread = threading.Thread(target=self._relay, name="latency-tui-relay",
                                              daemon=True)
        self._relay_thread.start()

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid

    def _request_stop(self) -> None:
        with self._send_lock:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass

    def kill(self) -> None:
        """Terminate the engine's process now (SIGTERM, then SIGKILL a second later), from a
        thread of its own: the caller (the UI thread) never waits."""
        super().kill()
        threading.Thread(target=self._child.stop, kwargs={"grace_s": 0.0},
                         name="latency-tui-kill", daemon=True).start()

    def _relay(self) -> None:
        finished = False
        try:
            while True:
                try:
                    item = self._conn.recv()
                except (EOFError, OSError, ValueError):  # the engine's process is gone
                    self._died(finished)
                    return
                except Exception as exc:  # a message cut short when the process was killed
                    self.error = EngineProcessError(f"a message from the engine was lost ({exc})")
                    return
                if isinstance(item, tuple) and len(item) == 3 and item[0] in (
                        _DONE, _USER_ERROR, _CRASH):
                    kind, value, details = item
                    if kind == _DONE:
                        self.results = tuple(value)
                    elif kind == _USER_ERROR:
                        self.error = UserError(value)
                    else:
                        self.error = EngineProcessError(value)
                        self.error.details = details  # type: ignore[attr-defined]
                    return
                finished = finished or isinstance(item, RunFinished)
                self.sink(item)
        finally:
            self._child.stop(grace_s=self.STOPPED_EXIT_GRACE_S if self._stop_requested
                             else self.EXIT_GRACE_S)
            self._conn.close()
            self._done.set()

    def _died(self, finished: bool) -> None:
        if finished or self._stop_requested:
            return
        self._child.join(1.0)
        code = self._child.exitcode
        where = f"; its output is in {self.log_path}" if self.log_path else ""
        self.error = EngineProcessError(f"the engine's process ended with exit code {code}{where}")


def start(plan: RunPlan, sink: Sink, *, isolation: str = "thread",
          strategy: Optional[Strategy] = None, log_path: Optional[Path] = None,
          **engine_options: Any) -> RunHandle:
    """Start ``plan`` in a thread or a process of its own; its events go to ``sink``."""
    if isolation == "thread":
        return ThreadRun(plan, sink, strategy, **engine_options)
    if isolation == "process":
        if engine_options:
            raise ValueError(f"engine options {sorted(engine_options)} need isolation='thread'")
        return ProcessRun(plan, sink, strategy, log_path=log_path)
    raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")


@contextlib.contextmanager
def real_stdio() -> Iterator[None]:
    """Textual replaces sys.stdout and sys.stderr with objects that have no file descriptor,
    and multiprocessing's resource tracker, started with the first lock or process, passes
    ``sys.stderr.fileno()`` on to its own process: put the real ones back for that moment."""
    saved = sys.stdout, sys.stderr
    try:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            try:
                usable = stream is not None and stream.fileno() >= 0
            except (AttributeError, OSError, ValueError):
                usable = False
            if not usable:
                setattr(sys, name, getattr(sys, f"__{name}__"))
        yield
    finally:
        sys.stdout, sys.stderr = saved


