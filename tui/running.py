"""Running from the app: starting and stopping runs, the 10 Hz tick that drains the
engine's events into the display's model, the session and the panes, and the header's facts.

A mixin of ``LatencyApp``: these methods read the app's run control, sessions, panes and
widgets, and live apart only so that each module of the app has one concern.

Stopping always takes effect (``runcontrol``): the engine is told, the header says what it
waits for and when the engine is killed, and a second stop (``r``, or ``q`` when quitting) kills
it at once. A key that cannot act during a run says so as a notice: the footer's grey is lost
without colour. While the display is paused the header is frozen with the panes, and says so.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Optional

from latency_tui.core import api
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, Progress, Samples, SearchUpdated, Utilisation,
)

from . import keys, present
from .live import shown_after_run
from .widgets.header import HeaderInfo
from .widgets.notices import NoticesPane
from .widgets.results import ResultsTable
from .widgets.utilisation import UtilisationPane

#: Actions that change the plan (greyed in the footer during a run), as a notice names them.
BUSY_ACTIONS = {"sweep": "a sweep", "pick_preset": "picking a preset",
                "edit": "editing the configuration", "open": "opening a session"}
SWEEP_WORDS = {"batch_sizes": "a batch-size sweep", "copies": "a copies sweep",
               "workers": "a workers sweep"}


class Running:
    """Start, stop, drain and follow a run (mixed into ``LatencyApp``)."""

    _follow_running = False
    _shown_readings = None
    _last_refresh = float("-inf")
    _last_poll = float("-inf")
    #: The header as it was when the display was paused (None: not paused).
    _frozen_header: Optional[HeaderInfo] = None

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
            live = self.runs.start(plan, clock=self.clock)
        except Exception as exc:
            self.notice("error", f"engine failed: {api.describe_error(exc)}")
            self.run_clock_end = self.clock()
        else:
            self.sessions.begin_run(live)
            log = getattr(self.runs.handle, "log_path", None)
            live.traceback_where = f"{log} and the session file" if log else "the session file"
            for pane in self.query(NoticesPane):
                pane.begin_run(f"run {live.run_id}")
        self.refresh_bindings()
        self.refresh_panes()

    def request_stop(self, grace_s: Optional[float] = None) -> None:
        """Stop the run: the engine is told now and killed after the grace of the phase it is
        in (``grace_s`` overrides it); asked again while stopping, it is killed at once."""
        if not self.run_active:
            return
        if self.live_run.state == "stopping":
            self.runs.kill()
            self.notice("info", "ending the engine's process now")
            self.refresh_panes()
            return
        phase = self.runs.phase()
        grace = self.runs.stop(grace_s)
        if phase in ("measuring", "stopping"):
            ends = "measuring ends within one inference"
        else:
            ends = f"the engine is {present.PHASE_WORDS.get(phase, phase)}"
        kill = (f"its process is ended in {grace:g} s if it has not stopped by then"
                if self.runs.killable else "it ends when the engine next checks")
        again = "q again quits now" if self.quitting else "r again ends it now"
        self.notice("info", f"stopping: {ends}; {kill} ({again}); the rest are skipped")
        self.refresh_panes()

    def request_quit(self) -> None:
        """Quit confirmed (or a signal): stop the run, and leave once it has ended."""
        self.quitting = True
        self.request_stop()

    async def run_action(self, action: Any, default_namespace: Any = None,
                         namespaces: Any = None) -> bool:
        """A key whose action cannot act during a run says why, instead of nothing."""
        target, name, params = self._parse_action(  # type: ignore[attr-defined]
            action, self if default_namespace is None else default_namespace, namespaces)
        if target is self and name in BUSY_ACTIONS and self.run_active:
            what = SWEEP_WORDS.get(str(params[0]) if params else "", BUSY_ACTIONS[name])
            self.notice("warning", f"{what} cannot start during a run: stop the run first "
                                   "(r stops it)")
            return True
        return await super().run_action(  # type: ignore[misc]
            action, default_namespace, namespaces)

    # -- the header ------------------------------------------------------------------------
    def header_facts(self) -> HeaderInfo:
        """The header: what ``r`` runs, where the run stands; frozen while paused."""
        info = self._header_now()
        if not self.display_paused:
            self._frozen_header = None
            return info
        if self._frozen_header is None:
            self._frozen_header = info
        live = self.live_run
        now = present.RUN_STATES.get(live.state, "") if live is not None else ""
        if live is not None and not live.active:
            now = present.ended_words(live)[0]
        note = present.PAUSED_NOTE + (f"; the run is {now} now" if now else "")
        return replace(self._frozen_header, note=note)

    def _header_now(self) -> HeaderInfo:
        preset = self.plans.preset
        name = preset.name if preset is not None else (self.requested_preset or "-")
        elapsed = None
        if self.run_clock is not None:
            end = self.run_clock_end if self.run_clock_end is not None else self.clock()
            elapsed = end - self.run_clock
        waiting = self.runs.waiting() if self.runs.stopped_in is not None else ""
        again = keys.localize(self, "q again quits now" if self.quitting
                              else "r again ends it now")
        info = present.live_header(name, self.plans.plan, self.live_run, elapsed, False,
                                   now=self.clock(), waiting=waiting, again=again)
        if self.viewing is None:
            return info
        path, session = self.viewing
        return present.view_header(path, session, self.focus_config(), False, current=info)

    def _tick(self, force: bool = False) -> None:
        """Drain the engine's events into the model, then draw what is due in one frame.

        One timer drives everything so that a redraw, a monitor reading and a lifecycle
        change land in the same screen update: each frame costs the UI thread (and, through
        the GIL, a thread-mode timing loop) the same whatever changed in it.
        """
        ended = self.runs.ended  # read before draining: every event is in the buffer by then
        self.sessions.report()  # the writes the session writer finished since the last tick
        lifecycle = False
        for event in self.runs.drain():
            run = self.runs.live
            if run is None:
                break
            for level, text in run.apply(event):
                self.notice(level, text)
            self.sessions.record(event)
            if isinstance(event, ConfigFinished) and self.sessions.session.results:
                # What the recorder adds to a result (the host's noise) is a notice too.
                recorded = self.sessions.session.results[-1]
                label = recorded.config.label
                for warning in recorded.warnings:
                    if warning not in event.result.warnings:
                        self.notice("warning", f"{label}: {warning}")
            if isinstance(event, ConfigFinished) or (
                    isinstance(event, SearchUpdated) and event.outcome.get("done")):
                self.sessions.autosave()  # a search's last word comes after its last result
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
        if self.runs.was_killed:
            what = present.PHASE_WORDS.get(self.runs.stopped_in or "", "running")
            self.notice("info", f"the engine did not stop in time while {what}: its process "
                                "was ended; what finished is saved")
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
