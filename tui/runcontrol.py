"""One run at a time: started through the core's facade, its events drained on the UI thread,
stopped or killed on request; no Textual here.

``start_run(plan, sink) -> RunHandle`` is the seam: the app's default runs the engine in a
process of its own (``core.api.start(..., isolation="process")``); tests pass the real engine in
a thread, or a scripted run whose events they control.

A stop always takes effect: the engine is told at once, and if it has not ended after a short
grace its process is terminated. While the engine measures, that grace is its own bound on an
inference in flight plus a moment to send what it measured; in every other phase (the engine
starting, the model loading, a compile, warm-up, copies starting) nothing measured can be lost
and a model load cannot be interrupted, so the grace is short. A second stop (or quit) kills at
once.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional

from latency_tui.core.api import RunHandle
from latency_tui.core.errors import UserError, describe_error
from latency_tui.core.events import Event
from latency_tui.core.specs import RunPlan

from .live import EventBuffer, LiveRun

StartRun = Callable[[RunPlan, Callable[[Any], None]], RunHandle]

#: How long a stopped engine may take to end by itself before it is killed: outside measuring,
#: and while measuring (the engine's own 2 s bound on an inference in flight, and a moment to
#: send the figures of the configuration it cancels).
SETUP_GRACE_S = 0.5
MEASURING_GRACE_S = 2.5

#: What the engine is busy with when asked to stop, by the phase of the configuration.
WAITING_FOR = {
    "starting": "the engine to start",
    "loading": "the model load",
    "compiling": "the compile or load",  # a compiling device's copies load under this phase
    "warmup": "the warm-up",
    "measuring": "the last inference",
    "stopping": "the last inference",
}


class RunControl:
    def __init__(self, start_run: StartRun) -> None:
        self.start_run = start_run
        self.handle: Optional[RunHandle] = None
        self.live: Optional[LiveRun] = None
        self.buffer = EventBuffer()
        self.runs_started = 0
        #: The phase the run was in when it was asked to stop (None: not asked).
        self.stopped_in: Optional[str] = None
        #: The last run's handle was killed (its grace ran out, or it was asked twice).
        self.was_killed = False

    @property
    def active(self) -> bool:
        return self.live is not None and self.live.active

    @property
    def stop_requested(self) -> bool:
        return self.handle is not None and self.handle.stop_requested

    def start(self, plan: RunPlan, clock: Optional[Callable[[], float]] = None) -> LiveRun:
        """Start ``plan``; a run that cannot start raises, and its LiveRun reads "failed".
        ``clock`` times the phases of each configuration, for the time left."""
        self.runs_started += 1
        live = LiveRun(self.runs_started, plan, clock=clock)
        self.live, self.handle, self.buffer = live, None, EventBuffer()
        self.stopped_in, self.was_killed = None, False
        try:
            self.handle = self.start_run(plan, self.buffer)
        except BaseException:
            live.finish("failed")
            raise
        return live

    def phase(self) -> str:
        """What the run is doing now: "starting", or its configuration's phase."""
        live = self.live
        current = live.current_config() if live is not None else None
        if live is None or current is None or live.state == "starting":
            return "starting"
        return current.phase

    def grace(self) -> float:
        return MEASURING_GRACE_S if self.phase() in ("measuring", "stopping") else SETUP_GRACE_S

    def stop(self, grace_s: Optional[float] = None) -> float:
        """Ask the run to stop, and kill it if it has not ended ``grace_s`` later (by default
        the grace of the phase it is in); returns the grace."""
        grace = self.grace() if grace_s is None else grace_s
        if self.live is not None and self.live.active:
            if self.stopped_in is None:
                self.stopped_in = self.phase()
            self.live.state = "stopping"
        if self.handle is not None:
            self.handle.stop(grace)
        return grace

    def kill(self) -> None:
        if self.live is not None and self.live.active:
            self.live.state = "stopping"
            self.stopped_in = self.stopped_in or self.phase()
        if self.handle is not None:
            self.handle.kill()

    @property
    def killable(self) -> bool:
        return bool(getattr(self.handle, "killable", False))

    def waiting(self, now: Optional[float] = None) -> str:
        """While stopping, what the screen waits for: "waiting for the model load; killed in
        1 s"."""
        what = WAITING_FOR.get(self.stopped_in or "", "the engine")
        handle = self.handle
        kill_at = getattr(handle, "kill_at", None) if handle is not None else None
        if kill_at is None or not self.killable:
            return f"waiting for {what}"
        left = kill_at - (time.monotonic() if now is None else now)
        if left <= 0:
            return f"waiting for {what}; ending the engine's process"
        return f"waiting for {what}; killed in {max(1, round(left))} s"

    def drain(self) -> List[Event]:
        return self.buffer.drain()

    @property
    def ended(self) -> bool:
        """True once the run's handle is done (its every event is in the buffer by then)."""
        return self.handle is not None and self.handle.done

    def finish(self) -> Optional[str]:
        """Close the ended run; the error it ended with, as the notice's words, if any."""
        handle, live = self.handle, self.live
        self.handle = None
        error = handle.error if handle is not None else None
        self.was_killed = bool(getattr(handle, "killed", False)
                               and getattr(handle, "killable", False))
        if live is not None and live.active:
            if error is not None:
                live.finish("failed")
            else:  # the engine ended without RunFinished (killed, or it died)
                live.finish("cancelled" if handle is not None and handle.stop_requested
                            else "finished")
        if error is None:
            return None
        if isinstance(error, UserError):
            return str(error)
        return f"engine failed: {describe_error(error)}"
