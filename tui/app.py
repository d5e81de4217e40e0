"""The live TUI: a preset, a run that streams into panes, sweeps on one key, saved sessions.

How it is wired, and why:

* A run starts through the core's facade (``core.api.start``) with the engine in a process of
  its own, so that drawing never holds the GIL a thread-mode timing loop needs, torch never
  loads in the app's process and what a model prints goes to engine.log. Its events reach an
  ``EventBuffer`` (append under a lock, return): nothing waits for the UI. ``runcontrol`` owns
  that run; ``planstate`` the preset, the user's changes and the plan; ``sessions`` the session,
  saved after every finished configuration; ``live`` the display's model, built from events
  alone; ``panes`` the drawing; ``dialogs`` the prompts.
* One 10 Hz timer drains the buffer into the model and the session; the panes redraw at the
  refresh interval (0.5 s by default, ``+``/``-`` change it) or at once on a lifecycle event,
  in one frame with the monitors' readings.
* A saved session opened with ``o`` is shown through the same panes, read-only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from latency_tui.core import api
from latency_tui.core.errors import UserError

from . import dialogs, keys, present, searchscreen
from .commands import PresetCommands, app_commands
from .export import save_screen
from .layout import apply_size, change_refresh
from .live import LiveConfig, shown_after_run
from .panes import Panes
from .planstate import PlanState, tui_words
from .runcontrol import RunControl, StartRun
from .running import Running
from .screens import ConfirmScreen
from .sessions import SessionKeeper
from .widgets.gauges import PercentileGauges
from .widgets.header import HeaderBar
from .widgets.histogram import LatencyHistogram
from .widgets.notices import NoticesPane
from .widgets.results import ResultsTable
from .widgets.timeline import Timeline
from .widgets.utilisation import UtilisationPane

#: After quit is confirmed, how long the engine may take to stop before it is killed.
QUIT_GRACE_S = 3.0

#: Actions that change the plan: disabled (greyed in the footer) while a run is going.
_PLAN_ACTIONS = {"sweep", "pick_preset", "edit", "open"}


class LatencyApp(Running, App[int]):
    """latency-tui's app. Every collaborator can be injected; the defaults are the real ones."""

    CSS_PATH = "app.tcss"
    TITLE = "latency-tui"
    COMMANDS = App.COMMANDS | {PresetCommands}
    BINDINGS = keys.BINDINGS

    def __init__(
        self,
        preset: Optional[str] = None,
        *,
        session_path: Optional[str] = None,
        open_session: Optional[str] = None,
        start_run: Optional[StartRun] = None,
        monitors: Optional[Sequence[api.Monitor]] = None,
        data_dir: Optional[Path] = None,
        keymap: Any = None,  # {binding id: keys}, or prefs.KeysFile: checked at mount
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 0.5,
        drain_s: float = 0.1,
        monitor_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.requested_preset = preset
        self.open_at_start = open_session
        self.fixed_monitors = list(monitors) if monitors is not None else None
        self.keymap: Any = keymap if keymap is not None else {}
        self.clock = clock
        self.refresh_s = refresh_s
        self.drain_s = drain_s
        self.monitor_s = monitor_s

        self.plans = PlanState()
        self.runs = RunControl(start_run or self._start_in_process)
        self.run_clock: Optional[float] = None
        self.run_clock_end: Optional[float] = None

        data = Path(data_dir) if data_dir is not None else None
        self._data_root: Callable[[], Path] = lambda: data or api.data_dir()
        self.sessions = SessionKeeper(
            lambda: self._data_root() / "sessions", self.notice,
            Path(session_path).expanduser() if session_path else None,
        )
        #: A saved session being viewed: (path, session), and its configurations.
        self.viewing: Optional[Tuple[Path, api.Session]] = None
        self.view_configs: Dict[str, LiveConfig] = {}

        self.display_paused = False
        self.quitting = False
        #: The exit status: 0, or 128 + the signal that ended the app.
        self.exit_code = 0
        self.panes = Panes(self, self.notice)
        self._device: Optional[str] = None

    # -- what the rest of the app reads ----------------------------------------------------
    @property
    def plan(self) -> Optional[api.RunPlan]:
        return self.plans.plan

    @property
    def overrides(self) -> Dict[str, Any]:
        return self.plans.overrides

    @property
    def live_run(self) -> Any:
        return self.runs.live

    @property
    def run_active(self) -> bool:
        return self.runs.active

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="root"):
            yield HeaderBar(id="header")
            with Horizontal(id="top"):
                with Vertical(id="left"):
                    yield LatencyHistogram(id="histogram")
                    yield Timeline(id="timeline")
                yield PercentileGauges(id="gauges")
                yield UtilisationPane(id="utilisation")
            yield ResultsTable(id="results")
            yield NoticesPane(id="notices")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self.keymap = keys.apply_keymap(self, self.keymap)  # what is sound; notices for the rest
        apply_size(self, self.size.width, self.size.height)
        self.set_interval(self.drain_s, self._tick, name="drain")
        if not self.is_headless:
            self._handle_signals()
        self._load_initial_preset()
        if self.open_at_start:
            self.open_path(self.open_at_start)
        self.refresh_panes()

    def on_resize(self, event: events.Resize) -> None:
        apply_size(self, event.size.width, event.size.height)

    # -- presets and plans ---------------------------------------------------------------
    def _load_initial_preset(self) -> None:
        name = self.requested_preset
        try:
            if name is None:
                name = self.plans.default_name()
            if name is None:
                self.notice("error", "no presets found: p picks a preset file")
                return
            self._plan_changed(self.plans.load(name))
        except UserError as exc:
            self.notice("error", str(exc))

    def _plan_changed(self, plan: api.RunPlan, announce: bool = True) -> None:
        self._update_monitors()
        if announce:
            self.notice("info", f"preset {self.plans.preset.name}: "
                                f"{present.plan_summary(plan)}; r runs it")

    def switch_preset(self, name: str) -> None:
        """Make ``name`` (a preset name or a path) current, with no overrides."""
        if self.run_active:
            self.notice("warning", "stop the run (r) before changing the preset")
            return
        try:
            self._plan_changed(self.plans.load(name))
        except UserError as exc:
            self.notice("error", str(exc))
        self.refresh_panes()

    def apply_changes(self, changes: Dict[str, Any]) -> bool:
        try:
            self.plans.apply(changes)
        except UserError as exc:
            self.notice("error", str(exc))
            return False
        self._plan_changed(self.plans.plan, announce=False)
        self.refresh_panes()
        return True

    def _update_monitors(self) -> None:
        pane = self.query_one(UtilisationPane)
        if self.fixed_monitors is not None:
            if not pane.monitors:
                pane.set_monitors(self.fixed_monitors)
            return
        plan = self.plans.plan
        device = plan.configs[0].device if plan and plan.configs else "cpu"
        if device != self._device:
            self._device = device
            pane.set_monitors(api.default_monitors(device))

    # -- viewing a saved session ---------------------------------------------------------
    def open_path(self, text: str) -> None:
        dialogs.view_session(self, text)

    def _leave_view(self) -> None:
        if self.viewing is not None:
            self.viewing = None
            self.view_configs = {}
            self.query_one(UtilisationPane).set_absent(None)

    # -- drawing -------------------------------------------------------------------------
    def notice(self, level: str, text: str) -> None:
        panes = self.query(NoticesPane)
        if panes:  # none while the app shuts down: the session still records what happened
            panes.first().add(level, keys.localize(self, tui_words(text)))

    def _table_configs(self) -> Iterable[LiveConfig]:
        configs = self.view_configs if self.viewing is not None else self.sessions.configs
        return configs.values()

    def focus_config(self) -> Optional[LiveConfig]:
        """The configuration the panes show: the running one, else the table's cursor row."""
        if self.run_active and self.viewing is None:
            current = self.live_run.current_config()
            if current is not None:
                return current
        configs = self.view_configs if self.viewing is not None else self.sessions.configs
        key = self.query_one(ResultsTable).selected_key()
        if key in configs:
            return configs[key]
        done = shown_after_run(configs.values())
        return done[-1] if done else None

    def refresh_panes(self) -> None:
        """Redraw every pane from the model (only the header while the display is paused)."""
        self._last_refresh = time.monotonic()
        with self.batch_update():
            self.panes.draw(self._header_info(), self._table_configs(), self.focus_config(),
                            self.live_run if self.viewing is None else None,
                            self.display_paused, self.plans.plan is None)

    def _header_info(self) -> Any:
        info = self._header_facts()
        return replace(info, note=keys.localize(self, info.note))

    def _header_facts(self) -> Any:
        return self.header_facts()  # running.py: what r runs, the run's state; frozen if paused

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        if action in _PLAN_ACTIONS and self.run_active:
            return None  # greyed in the footer: stop the run first
        return True

    def action_toggle_run(self) -> None:
        if self.run_active:
            self.request_stop()
        else:
            dialogs.run_checked(self)  # a device this host lacks is a notice, not a run

    def action_sweep(self, axis: str) -> None:
        dialogs.sweep(self, axis)

    def action_search(self) -> None:
        searchscreen.search(self)

    def action_pick_preset(self) -> None:
        dialogs.pick_preset(self)

    def action_edit(self) -> None:
        dialogs.edit(self)

    def action_save(self) -> None:
        dialogs.save(self)

    def action_open(self) -> None:
        dialogs.open_session(self)

    def action_export_screen(self) -> None:
        save_screen(self, self._data_root() / "exports")

    def action_pause(self) -> None:
        self.display_paused = not self.display_paused
        self.refresh_panes()

    def action_refresh_rate(self, factor: float) -> None:
        change_refresh(self, faster=factor < 1)

    def action_sort(self, number: int) -> None:
        self.query_one(ResultsTable).sort_by_number(number)

    def action_help(self) -> None:
        keys.show_help(self)

    async def action_quit(self) -> None:
        if not self.run_active:
            self._finish_quit()
            return
        if self.quitting:  # asked twice: do not wait for the engine
            self.runs.kill()
            self._finish_quit()
            return

        def answer(yes: Optional[bool]) -> None:
            if yes:
                self.request_quit()  # the engine is killed after a short grace; q again: now

        self.push_screen(ConfirmScreen(
            "A run is in progress. Stop it, save the finished configurations and quit?"),
            answer)

    def _finish_quit(self) -> None:
        self.sessions.autosave(wait=True)
        self.exit(self.exit_code)

    def _handle_signals(self) -> None:
        """SIGINT, SIGTERM and SIGHUP (the SSH link dropping) end the app as a confirmed quit
        does: the run stops (what finished is saved, the configuration in progress as
        cancelled), the terminal is restored, and the exit status is 128 + the signal."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(signum, self.on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass

    def on_signal(self, signum: int) -> None:
        self.exit_code = 128 + int(signum)
        if signum == signal.SIGHUP:
            self._hang_up()
        if not self.run_active:
            self._finish_quit()
        elif self.quitting:  # a second signal: do not wait for the engine
            self.runs.kill()
            self._finish_quit()
        else:
            self.request_quit()

    def _hang_up(self) -> None:
        """The terminal is gone: nothing can be drawn (a write to it would block for ever), so
        stop the run, fold its last events into the session, save it and leave at once."""
        self.runs.stop()
        handle = self.runs.handle
        if handle is not None and not handle.wait(QUIT_GRACE_S):
            self.runs.kill()
            handle.wait(QUIT_GRACE_S)
        for event in self.runs.drain():
            if self.runs.live is not None:
                self.runs.live.apply(event)
            self.sessions.record(event)
        self.sessions.autosave(wait=True)
        os._exit(self.exit_code)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.run_active or self.viewing is not None:
            self.refresh_panes()

    def on_unmount(self) -> None:
        if self.run_active:
            self.runs.stop(grace_s=QUIT_GRACE_S)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        return app_commands(self)  # not Textual's Keys, Maximize, Screenshot, Theme


def run_app(preset: Optional[str] = None, *, session_path: Optional[str] = None,
            open_session: Optional[str] = None) -> int:
    """Open the app on ``preset`` (a name or a TOML path; the default preset when None).

    ``session_path`` is where the session is saved (after every finished configuration and
    on quit); by default a new file in the user data directory. ``open_session`` opens a
    saved session to view. Returns the exit status; prints where sessions were saved.
    """
    from .prefs import load_keymap

    app = LatencyApp(preset, session_path=session_path, open_session=open_session,
                     keymap=load_keymap())
    code = app.run()
    app.sessions.flush()  # however the app ended (a crash too), its last write lands first
    try:
        for path in app.sessions.saved_paths:
            print(f"latency-tui: session saved to {path}")
    except OSError:  # the terminal hung up (SIGHUP): the sessions are saved all the same
        pass
    return int(code or 0)
