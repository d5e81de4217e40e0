"""One run at a time: started through the core's facade, its events drained on the UI thread,
stopped or killed on request; no Textual here.

``start_run(plan, sink) -> RunHandle`` is the seam: the app's default runs the engine in a
process of its own (``core.api.start(..., isolation="process")``); tests pass the real engine in
a thread, or a scripted run whose events they control.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from latency_tui.core.api import RunHandle
from latency_tui.core.errors import UserError, describe_error
from latency_tui.core.events import Event
from latency_tui.core.specs import RunPlan

from .live import EventBuffer, LiveRun

StartRun = Callable[[RunPlan, Callable[[Any], None]], RunHandle]


class RunControl:
    def __init__(self, start_run: StartRun) -> None:
        self.start_run = start_run
        self.handle: Optional[RunHandle] = None
        self.live: Optional[LiveRun] = None
        self.buffer = EventBuffer()
        self.runs_started = 0

    @property
    def active(self) -> bool:
        return self.live is not None and self.live.active

    @property
    def stop_requested(self) -> bool:
        return self.handle is not None and self.handle.stop_requested

    def start(self, plan: RunPlan) -> LiveRun:
        """Start ``plan``; a run that cannot start raises, and its LiveRun reads "failed"."""
        self.runs_started += 1
        live = LiveRun(self.runs_started, plan)
        self.live, self.handle, self.buffer = live, None, EventBuffer()
        try:
            self.handle = self.start_run(plan, self.buffer)
        except BaseException:
            live.finish("failed")
            raise
        return live

    def stop(self, grace_s: Optional[float] = None) -> None:
        """Ask the run to stop; with ``grace_s``, kill it if it has not ended by then."""
        if self.live is not None and self.live.active:
            self.live.state = "stopping"
        if self.handle is not None:
            self.handle.stop(grace_s)

    def kill(self) -> None:
        if self.handle is not None:
            self.handle.kill()

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
