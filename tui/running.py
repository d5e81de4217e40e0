"""Running from the app: starting and stopping runs, and the 10 Hz tick that drains the
engine's events into the display's model, the session and the panes.

A mixin of ``LatencyApp``: these methods read the app's run control, sessions, panes and
widgets, and live apart only so that each module of the app has one concern.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from latency_tui.core import api
from latency_tui.core.events import ConfigFinished, ConfigStarted, Progress, Samples, Utilisation

from . import present
from .live import shown_after_run
from .widgets.results import ResultsTable
from .widgets.utilisation import UtilisationPane


class Running:
    """Start, stop, drain and follow a run (mixed into ``LatencyApp``)."""

    _follow_running = False
    _shown_readings = None
    _last_refresh = float("-inf")
    _last_poll = float("-inf")

    def _start_in_process(self, plan: api.RunPlan, sink: Callable[[Any], None]) -> Any:
        """The default: the engine in a process of its own, what it prints in engine.log."""
        return api.start(plan, sink, isolation="process",
                         log_path=self._data_root() / "engine.log")

    def start_run(self) -> None:
        if self.run_active:
            return
        plan = self.plans.plan
        if plan is None:
            self.notice("error", "nothing to run: p picks a preset")
            return
        self._leave_view()
        self.panes.forget_histogram()
        self.run_clock, self.run_clock_end = self.clock(), None
        try:
            live = self.runs.start(plan)
        except Exception as exc:
            self.notice("error", f"engine failed: {api.describe_error(exc)}")
            self.run_clock_end = self.clock()
        else:
            self.sessions.begin_run(live)
        self.refresh_bindings()
        self.refresh_panes()

    def request_stop(self, grace_s: Optional[float] = None) -> None:
        if not self.run_active:
            return
        if self.live_run.state != "stopping":
            self.notice("info", "stopping: the configuration in progress ends within one "
                                "inference; the rest are skipped")
        self.runs.stop(grace_s)
        self.refresh_panes()

    def _tick(self, force: bool = False) -> None:
        """Drain the engine's events into the model, then draw what is due in one frame.

        One timer drives everything so that a redraw, a monitor reading and a lifecycle
        change land in the same screen update: each frame costs the UI thread (and, through
        the GIL, a thread-mode timing loop) the same whatever changed in it.
        """
        ended = self.runs.ended  # read before draining: every event is in the buffer by then
        lifecycle = False
        for event in self.runs.drain():
            run = self.runs.live
            if run is None:
                break
            for level, text in run.apply(event):
                self.notice(level, text)
            self.sessions.record(event)
            if isinstance(event, ConfigFinished):
                self.sessions.autosave()
            elif isinstance(event, ConfigStarted):
                self._follow_running = True
            if not isinstance(event, (Samples, Progress, Utilisation)):
                lifecycle = True
        drawable = bool(self.query(UtilisationPane))  # none while the app shuts down
        if ended:
            self._run_ended(drawable)
            lifecycle = True
        if not drawable:
            return
        now = time.monotonic()
        redraw = force or lifecycle or (
            self.run_active and now - self._last_refresh >= self.refresh_s)
        # Between runs the app reads its own monitors; during one, the engine's readings.
        poll = not self.run_active and now - self._last_poll >= self.monitor_s
        if not (redraw or poll or self._follow_running):
            return
        with self.batch_update():
            if not self.display_paused and self.viewing is None:
                pane = self.query_one(UtilisationPane)
                # The engine's readings are drawn in a redraw's frame, never in one of their own.
                readings = self.runs.live.utilisation if self.runs.live is not None else None
                if redraw and readings is not None and readings is not self._shown_readings:
                    self._shown_readings = readings
                    pane.show(readings)
                elif poll:
                    self._last_poll = now
                    pane.poll()
            if redraw:
                self.refresh_panes()
            if self._follow_running:
                self._follow_running = False
                self._select_running()

    def _run_ended(self, drawable: bool = True) -> None:
        error = self.runs.finish()
        if error:
            self.notice("error", error)
        self.run_clock_end = self.clock()
        self._follow_running = False
        if drawable:
            self._select_last_finished()
            self.refresh_bindings()
        if self.quitting:
            self._finish_quit()

    def _select_running(self) -> None:
        """The table's cursor follows the configuration the panes show during a run."""
        current = self.live_run.current_config() if self.live_run else None
        table = self.query_one(ResultsTable)
        if current is not None and current.key in table.shown_keys and not self.display_paused:
            table.move_cursor(row=table.shown_keys.index(current.key), animate=False)

    def _select_last_finished(self) -> None:
        """After a run the panes keep showing its last finished configuration."""
        if self.live_run is None:
            return
        done = [c.key for c in shown_after_run(self.live_run.configs.values())]
        table = self.query_one(ResultsTable)
        table.set_rows(present.result_rows(self._table_configs()))
        if done and done[-1] in table.shown_keys:
            table.move_cursor(row=table.shown_keys.index(done[-1]), animate=False)
