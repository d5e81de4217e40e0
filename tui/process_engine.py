"""The engine in a process of its own, behind the engine's own interface.

Why: the app draws in Python, and a redraw holds the GIL. With the engine in the app's
process, every millisecond of drawing is a millisecond a thread-mode timing loop cannot run
(measured: about 9 % of the MLP preset's throughput at two redraws a second). In a child
process the engine has a GIL of its own; the app costs it only a share of a core. It also
keeps torch out of the app's process (the first screen never waits for it), keeps what a
model prints off the screen, and a model that crashes its process takes the run down, not
the app.

``ProcessEngine(plan, sink)`` has ``Engine``'s shape: ``run()`` blocks (the app calls it from
its thread worker) and relays the child's events to ``sink`` as they arrive; ``stop()`` is
thread-safe and reaches the child's engine within one inference.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple

from latency_tui.core.errors import UserError
from latency_tui.core.events import RunFinished
from latency_tui.core.measurement import ConfigResult
from latency_tui.core.specs import RunPlan

#: How the child reports the end of ``Engine.run``: ("done", results) or ("error", message).
_DONE, _ERROR = "done", "error"


class EngineProcessError(RuntimeError):
    """The engine's process failed or died before the run ended."""


def _child(plan: RunPlan, events: Any, stop: Any, parent: int, log: Optional[str]) -> None:
    """The child process: run the plan, send every event and then the outcome."""
    if log:  # what the model and libraries print must not land on the app's screen
        with open(log, "a", encoding="utf-8") as handle:
            os.dup2(handle.fileno(), 1)
            os.dup2(handle.fileno(), 2)
    from latency_tui.core.engine import Engine

    engine = Engine(plan, events.put)

    def watch() -> None:  # a stop request, or the app gone: end the run
        while not stop.value and os.getppid() == parent:
            time.sleep(0.05)
        engine.stop()

    threading.Thread(target=watch, name="latency-tui-stop", daemon=True).start()
    try:
        results = engine.run()
    except UserError as exc:
        events.put((_ERROR, f"UserError:{exc}"))
    except BaseException as exc:  # reported to the app, which shows it as a notice
        events.put((_ERROR, f"{type(exc).__name__}: {exc}"))
    else:
        events.put((_DONE, results))
    events.close()
    events.join_thread()


class ProcessEngine:
    """Runs ``plan`` in a spawned process and relays its events to ``sink``."""

    def __init__(self, plan: RunPlan, sink: Callable[[Any], None], *,
                 log_path: Optional[Path] = None) -> None:
        self.plan = plan
        self.sink = sink
        self.log_path = log_path
        context = multiprocessing.get_context("spawn")
        with _real_stdio():  # a queue's lock starts multiprocessing's resource tracker
            self._events = context.Queue()
            # A shared flag the child polls, not an Event: setting an Event whose waiter's
            # process has ended blocks for ever (its Condition waits for the dead waiter).
            self._stop = context.Value("b", 0, lock=False)
        self._process = context.Process(
            target=_child, name="latency-tui-engine",
            args=(plan, self._events, self._stop, os.getpid(),
                  str(log_path) if log_path else None),
        )

    def stop(self) -> None:
        self._stop.value = 1

    def run(self) -> Tuple[ConfigResult, ...]:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with _real_stdio():
            self._process.start()
        try:
            return self._relay()
        finally:
            self._stop.value = 1
            self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)

    def _relay(self) -> Tuple[ConfigResult, ...]:
        finished = False
        while True:
            try:
                item = self._events.get(timeout=0.2)
            except queue_module.Empty:
                if not self._process.is_alive():
                    return self._died(finished)
                continue
            if isinstance(item, tuple) and len(item) == 2 and item[0] in (_DONE, _ERROR):
                kind, value = item
                if kind == _DONE:
                    return tuple(value)
                if value.startswith("UserError:"):
                    raise UserError(value[len("UserError:"):])
                raise EngineProcessError(value)
            finished = finished or isinstance(item, RunFinished)
            self.sink(item)

    def _died(self, finished: bool) -> Tuple[ConfigResult, ...]:
        code = self._process.exitcode
        if finished:
            return ()
        where = f"; its output is in {self.log_path}" if self.log_path else ""
        raise EngineProcessError(f"the engine's process ended with exit code {code}{where}")


@contextlib.contextmanager
def _real_stdio() -> Iterator[None]:
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
