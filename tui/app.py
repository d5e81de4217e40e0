"""The live TUI: a preset, a run that streams into panes, sweeps on one key, saved sessions.

How it is wired, and why:

* The engine runs in a process of its own (``tui.process_engine``), driven from a Textual
  thread worker, so that drawing never holds the GIL a thread-mode timing loop needs. Its
  events reach an ``EventBuffer`` (append under a lock, return): nothing waits for the UI.
  A 10 Hz timer drains the buffer into ``LiveRun`` (the display's model) and the session;
  the panes redraw at the refresh interval (0.5 s by default, ``+``/``-`` change it) or at
  once on a lifecycle event, in one frame with the monitors' readings.
* The engine, presets and plans come in through two seams, ``engine_factory(plan, sink)`` and
  a ``catalog`` (``tui.catalog``). The defaults import the real ones lazily (torch is imported
  only in the engine's process); tests pass ``tui.fake``'s scripted ones.
* ``tui.sessions`` keeps the session and saves it after every finished configuration;
  ``tui.present`` turns the model into what each pane draws.
* A saved session opened with ``o`` is shown through the same panes, read-only.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from latency_tui.core.errors import UserError
from latency_tui.core.events import ConfigFinished, ConfigStarted, Progress, Samples
from latency_tui.core.session import Session, check_writable, load_session
from latency_tui.core.specs import RunPlan

from . import present
from .catalog import Catalog, CoreCatalog, axis_values, default_preset_name
from .commands import PresetCommands
from .format import fmt_values
from .live import EventBuffer, LiveConfig, LiveRun
from .monitors import Monitor, default_monitors
from .screens import ConfirmScreen, EditScreen, HelpScreen, PathPrompt, PresetPicker, ValuesPrompt
from .sessions import SessionKeeper, view_configs
from .widgets.gauges import PercentileGauges
from .widgets.header import HeaderBar
from .widgets.histogram import LatencyHistogram
from .widgets.notices import NoticesPane
from .widgets.results import ResultsTable
from .widgets.timeline import Timeline
from .widgets.utilisation import UtilisationPane

#: Below this the panes do not fit; the app shows a notice instead (and keeps running).
MIN_SIZE = (80, 24)
#: Below these the utilisation pane (width) or the timeline (height) is hidden.
NARROW_WIDTH = 100
SHORT_HEIGHT = 34

#: Sweep axis: (prompt title, what the values are, default when the plan does not sweep it).
SWEEP_AXES = {
    "batch_sizes": ("Batch-size sweep", "batch sizes", "1,2,4,8,16"),
    "copies": ("Copies sweep", "copies", "1,2,4"),
    "workers": ("Workers sweep", "workers", "1,2,4"),
}
#: Actions that change the plan: disabled (greyed in the footer) while a run is going.
_PLAN_ACTIONS = {"sweep", "pick_preset", "edit", "open"}

EngineFactory = Callable[[RunPlan, Callable[[Any], None]], Any]
#: The three sweep keys share one footer entry ("b c w Sweep"), so that every key fits at 80.
_SWEEP = Binding.Group("Sweep")


def thread_engine_factory(plan: RunPlan, sink: Callable[[Any], None]) -> Any:
    """The engine in the app's own process, in its thread worker (its copies still run in
    their threads or processes). The default puts it in a process of its own instead
    (``tui.process_engine``): drawing then never holds the engine's GIL."""
    from latency_tui.core.engine import Engine  # torch comes later, in the worker thread

    return Engine(plan, sink)


class _EngineHandle:
    """One run's engine and its stop request, shared by the UI thread and the worker.

    The UI sets ``stop_requested`` before it reads ``engine``; the worker stores ``engine``
    before it reads ``stop_requested``; so a stop pressed while the engine is still being
    built is never lost.
    """

    def __init__(self) -> None:
        self.engine: Any = None
        self.stop_requested = False

    def stop(self) -> None:
        self.stop_requested = True
        engine = self.engine
        if engine is not None:
            engine.stop()


class LatencyApp(App[int]):
    """latency-tui's app. Every collaborator can be injected; the defaults are the real ones."""

    CSS_PATH = "app.tcss"
    TITLE = "latency-tui"
    COMMANDS = App.COMMANDS | {PresetCommands}
    BINDINGS = [
        Binding("r", "toggle_run", "Run/Stop", id="run"),
        Binding("b", "sweep('batch_sizes')", "Batch sweep", id="sweep_batch", group=_SWEEP),
        Binding("c", "sweep('copies')", "Copies sweep", id="sweep_copies", group=_SWEEP),
        Binding("w", "sweep('workers')", "Workers sweep", id="sweep_workers", group=_SWEEP),
        Binding("p", "pick_preset", "Preset", id="preset"),
        Binding("e", "edit", "Edit", id="edit"),
        Binding("s", "save", "Save", id="save"),
        Binding("o", "open", "Open", id="open"),
        Binding("space", "pause", "Pause", id="pause"),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("plus,equals_sign", "refresh_rate(0.5)", "Redraw faster", show=False,
                id="faster"),
        Binding("minus", "refresh_rate(2.0)", "Redraw slower", show=False, id="slower"),
        *[Binding(str(n), f"sort({n})", f"Sort results by column {n}", show=False,
                  id=f"sort_{n}") for n in range(10)],
    ]

    def __init__(
        self,
        preset: Optional[str] = None,
        *,
        session_path: Optional[str] = None,
        open_session: Optional[str] = None,
        engine_factory: Optional[EngineFactory] = None,
        catalog: Optional[Catalog] = None,
        monitors: Optional[Sequence[Monitor]] = None,
        data_dir: Optional[Path] = None,
        keymap: Optional[Dict[str, str]] = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 0.5,
        drain_s: float = 0.1,
        monitor_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.catalog: Catalog = catalog or CoreCatalog()
        self.engine_factory: EngineFactory = engine_factory or self._process_engine
        self.requested_preset = preset
        self.open_at_start = open_session
        self.fixed_monitors = list(monitors) if monitors is not None else None
        self.keymap = dict(keymap or {})
        self.clock = clock
        self.refresh_s = refresh_s
        self.drain_s = drain_s
        self.monitor_s = monitor_s

        self.preset: Any = None
        self.overrides: Dict[str, Any] = {}
        self.plan: Optional[RunPlan] = None
        self.live_run: Optional[LiveRun] = None
        self.runs_started = 0
        self.handle: Optional[_EngineHandle] = None
        self._engine_worker: Optional[Worker] = None
        self.buffer = EventBuffer()
        self.run_clock: Optional[float] = None
        self.run_clock_end: Optional[float] = None

        data = Path(data_dir) if data_dir is not None else None
        self._data_root: Callable[[], Path] = lambda: data or _user_data_dir()
        self.sessions = SessionKeeper(
            lambda: self._data_root() / "sessions", self.notice,
            Path(session_path).expanduser() if session_path else None,
        )
        #: A saved session being viewed: (path, session), and its configurations.
        self.viewing: Optional[Tuple[Path, Session]] = None
        self.view_configs: Dict[str, LiveConfig] = {}

        self.display_paused = False
        #: Panes whose drawing failed once (reported once; the run is not disturbed).
        self.display_errors: set = set()
        self.quitting = False
        self._last_refresh = float("-inf")
        self._last_poll = float("-inf")
        self._histogram_signature: Any = None
        self._follow_running = False
        self._device: Optional[str] = None

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
        if self.keymap:
            self.set_keymap(self.keymap)
        self._apply_size(self.size.width, self.size.height)
        self.set_interval(self.drain_s, self._tick, name="drain")
        self._load_initial_preset()
        if self.open_at_start:
            self._open_path(self.open_at_start)
        self.refresh_panes()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        too_small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(too_small, "too-small")
        self.set_class(width < NARROW_WIDTH, "narrow")
        self.query_one(ResultsTable).set_compact(width < NARROW_WIDTH)
        footer = self.query_one(Footer)
        footer.compact = width < 110  # every key in the footer down to 80 columns
        footer.show_command_palette = width >= 110
        self.set_class(height < SHORT_HEIGHT, "short")
        if too_small:
            self.query_one("#too-small", Static).update(
                f"Terminal too small: {width}x{height}.\n"
                f"latency-tui needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}; enlarge the window.\n"
                "A run in progress goes on; q quits."
            )

    # -- presets and plans ---------------------------------------------------------------
    def _load_initial_preset(self) -> None:
        name = self.requested_preset
        try:
            if name is None:
                name = default_preset_name(self.catalog)
            if name is None:
                self.notice("error", "no presets found: p picks a preset file")
                return
            self._set_preset(self.catalog.load(name), {})
        except UserError as exc:
            self.notice("error", str(exc))

    def _set_preset(self, preset: Any, overrides: Dict[str, Any]) -> None:
        plan = self.catalog.build(preset, overrides)
        self.preset, self.overrides, self.plan = preset, dict(overrides), plan
        self._update_monitors()
        self.notice("info", f"preset {preset.name}: {present.plan_summary(plan)}; r runs it")

    def switch_preset(self, name: str) -> None:
        """Make ``name`` (a preset name or a path) current, with no overrides."""
        if self.run_active:
            self.notice("warning", "stop the run (r) before changing the preset")
            return
        try:
            self._set_preset(self.catalog.load(name), {})
        except UserError as exc:
            self.notice("error", str(exc))
        self.refresh_panes()

    def _check_overrides(self, changes: Dict[str, Any]) -> Optional[str]:
        """The plan builder's objection to these changes, or None."""
        if self.preset is None:
            return "no preset: p picks one"
        try:
            self.catalog.build(self.preset, {**self.overrides, **changes})
        except UserError as exc:
            return str(exc)
        return None

    def _apply_overrides(self, changes: Dict[str, Any]) -> bool:
        problem = self._check_overrides(changes)
        if problem:
            self.notice("error", problem)
            return False
        self.overrides = {**self.overrides, **changes}
        self.plan = self.catalog.build(self.preset, self.overrides)
        self._update_monitors()
        self.refresh_panes()
        return True

    def _update_monitors(self) -> None:
        pane = self.query_one(UtilisationPane)
        if self.fixed_monitors is not None:
            if not pane.monitors:
                pane.set_monitors(self.fixed_monitors)
            return
        device = self.plan.configs[0].device if self.plan and self.plan.configs else "cpu"
        if device != self._device:
            self._device = device
            pane.set_monitors(default_monitors(device))

    # -- running -------------------------------------------------------------------------
    @property
    def run_active(self) -> bool:
        return self.live_run is not None and self.live_run.active

    def start_run(self) -> None:
        if self.run_active:
            return
        if self.plan is None:
            self.notice("error", "nothing to run: p picks a preset")
            return
        self._leave_view()
        self.runs_started += 1
        self.live_run = LiveRun(self.runs_started, self.plan)
        self.sessions.begin_run(self.live_run)
        self.buffer = EventBuffer()
        self.handle = _EngineHandle()
        self.run_clock, self.run_clock_end = self.clock(), None
        self._histogram_signature = None
        self._engine_worker = self._run_engine(self.plan, self.buffer, self.handle)
        self.refresh_bindings()
        self.refresh_panes()

    def _process_engine(self, plan: RunPlan, sink: Callable[[Any], None]) -> Any:
        """The default engine: in a process of its own, what it prints in engine.log."""
        from .process_engine import ProcessEngine

        return ProcessEngine(plan, sink, log_path=self._data_root() / "engine.log")

    @work(thread=True, exclusive=True, group="bench", exit_on_error=False)
    def _run_engine(self, plan: RunPlan, sink: EventBuffer, handle: _EngineHandle) -> Any:
        engine = self.engine_factory(plan, sink)
        handle.engine = engine
        if handle.stop_requested:
            engine.stop()
        return engine.run()

    def request_stop(self) -> None:
        if not self.run_active or self.handle is None:
            return
        assert self.live_run is not None
        if self.live_run.state != "stopping":
            self.live_run.state = "stopping"
            self.notice("info", "stopping: the configuration in progress ends within one "
                                "inference; the rest are skipped")
        self.handle.stop()
        self.refresh_panes()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._engine_worker or event.state not in (
            WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED
        ):
            return  # not the current run's engine (an earlier one may still be winding down)
        self._tick(force=True)
        run = self.live_run
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            message = str(error) if isinstance(error, UserError) else \
                f"engine failed: {type(error).__name__}: {error}"
            self.notice("error", message)
            if run is not None and run.active:
                run.finish("failed")
        elif run is not None and run.active:  # the engine returned without RunFinished
            stopped = self.handle is not None and self.handle.stop_requested
            run.finish("cancelled" if stopped else "finished")
        self.run_clock_end = self.clock()
        self.handle = None
        self._select_last_finished()
        self.refresh_bindings()
        self.refresh_panes()
        if self.quitting:
            self._finish_quit()

    def _tick(self, force: bool = False) -> None:
        """Drain the engine's events into the model, then draw what is due in one frame.

        One timer drives everything so that a redraw, a monitor reading and a lifecycle
        change land in the same screen update: each frame costs the UI thread (and, through
        the GIL, a thread-mode timing loop) the same whatever changed in it.
        """
        lifecycle = False
        for event in self.buffer.drain():
            if self.live_run is None:
                break
            for level, text in self.live_run.apply(event):
                self.notice(level, text)
            self.sessions.record(event)
            if isinstance(event, ConfigFinished):
                self.sessions.autosave()
            elif isinstance(event, ConfigStarted):
                self._follow_running = True
            if not isinstance(event, (Samples, Progress)):
                lifecycle = True
        now = time.monotonic()
        redraw = force or lifecycle or (
            self.run_active and now - self._last_refresh >= self.refresh_s)
        # During a run the monitors are read in a redraw's frame, never in a frame of their own.
        poll = now - self._last_poll >= self.monitor_s and (redraw or not self.run_active)
        if not (redraw or poll or self._follow_running):
            return
        with self.batch_update():
            if poll:
                self._last_poll = now
                self._poll_monitors()
            if redraw:
                self.refresh_panes()
            if self._follow_running:
                self._follow_running = False
                self._select_running()

    def _poll_monitors(self) -> None:
        if not self.display_paused and self.viewing is None:
            self.query_one(UtilisationPane).poll()

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
        done = [c.key for c in self.live_run.configs.values() if c.result is not None]
        table = self.query_one(ResultsTable)
        table.set_rows(present.result_rows(self._table_configs().values()))
        if done and done[-1] in table.shown_keys:
            table.move_cursor(row=table.shown_keys.index(done[-1]), animate=False)

    # -- viewing a saved session ---------------------------------------------------------
    def _open_path(self, text: str) -> None:
        path = Path(text).expanduser()
        try:
            session = load_session(path)
        except UserError as exc:
            self.notice("error", str(exc))
            return
        self.viewing = (path, session)
        self.view_configs = view_configs(session)
        self._histogram_signature = None
        self.query_one(UtilisationPane).set_absent("viewing a saved session")
        self.notice("info", f"viewing {path}: {len(session.results)} configurations "
                            "(read-only; r runs the current preset)")
        for result in session.results:
            if result.status == "failed":
                self.notice("error", f"{result.config.label}: failed: {result.error}")
        self.refresh_panes()
        self.query_one(ResultsTable).move_cursor(row=0, animate=False)

    def _leave_view(self) -> None:
        if self.viewing is not None:
            self.viewing = None
            self.view_configs = {}
            self.query_one(UtilisationPane).set_absent(None)

    # -- drawing -------------------------------------------------------------------------
    def notice(self, level: str, text: str) -> None:
        self.query_one(NoticesPane).add(level, text)

    def _table_configs(self) -> Dict[str, LiveConfig]:
        return self.view_configs if self.viewing is not None else self.sessions.configs

    def focus_config(self) -> Optional[LiveConfig]:
        """The configuration the panes show: the running one, else the table's cursor row."""
        if self.run_active and self.viewing is None:
            assert self.live_run is not None
            current = self.live_run.current_config()
            if current is not None:
                return current
        configs = self._table_configs()
        key = self.query_one(ResultsTable).selected_key()
        if key in configs:
            return configs[key]
        done = [c for c in configs.values() if c.result is not None]
        return done[-1] if done else None

    def refresh_panes(self) -> None:
        """Redraw every pane from the model (only the header while the display is paused)."""
        self._last_refresh = time.monotonic()
        header = self.query_one(HeaderBar)
        if self.display_paused:
            header.show(self._header_info())
            return
        with self.batch_update():
            header.show(self._header_info())
            table = self.query_one(ResultsTable)
            self._guarded("results", lambda: table.set_rows(
                present.result_rows(self._table_configs().values())))
            focus = self.focus_config()
            gauges = self.query_one(PercentileGauges)
            self._guarded("histogram", lambda: self._show_histogram(focus))
            self._guarded("percentiles", lambda: gauges.show(present.gauge_data(focus)))
            self._guarded("timeline", self._show_timeline)

    def _guarded(self, pane: str, draw: Callable[[], None]) -> None:
        """Draw one pane; a drawing bug becomes one notice, not the end of a run."""
        try:
            draw()
        except Exception as exc:
            if pane not in self.display_errors:
                self.display_errors.add(pane)
                self.notice("error", f"display error in the {pane} pane: "
                                     f"{type(exc).__name__}: {exc}")

    def _header_info(self) -> Any:
        if self.viewing is not None:
            path, session = self.viewing
            return present.view_header(path, session, self.focus_config(), self.display_paused)
        preset = self.preset.name if self.preset is not None else (self.requested_preset or "-")
        elapsed = None
        if self.run_clock is not None:
            end = self.run_clock_end if self.run_clock_end is not None else self.clock()
            elapsed = end - self.run_clock
        return present.live_header(preset, self.plan, self.live_run, elapsed,
                                   self.display_paused)

    def _show_histogram(self, live: Optional[LiveConfig]) -> None:
        """Redraw only when the data changed: plotting is the most expensive pane."""
        histogram = self.query_one(LatencyHistogram)
        signature = (None if live is None else (live.key, live.count, live.phase,
                     live.result is not None), histogram.content_size, self.plan is None)
        if signature == self._histogram_signature:
            return
        self._histogram_signature = signature
        if live is None:
            histogram.show_message("no preset: press p to pick one" if self.plan is None
                                   else "no samples yet: press r to run")
            return
        label = live.config.label
        summary = live.summary() if (live.count or live.result) else None
        distribution = live.distribution()
        if distribution is not None:
            p = summary.percentiles if summary is not None else {}
            histogram.show_samples(distribution, p.get("p50"), p.get("p99"), label)
        elif summary is not None:
            histogram.show_percentiles(list(summary.percentiles.items()), label)
        elif live.status == "failed":
            histogram.show_message(f"{label}: failed (see notices)")
        elif live.phase in ("pending", "skipped", "cancelled"):
            histogram.show_message(f"{label}: {live.phase}")
        else:
            histogram.show_message(f"{label}: {live.phase}...")

    def _show_timeline(self) -> None:
        timeline = self.query_one(Timeline)
        points = self.live_run.timeline() if self.live_run and self.viewing is None else []
        if points:
            timeline.show([p.p99_ms for p in points], [p.samples_per_s for p in points],
                          f"{len(points)} windows of 0.5 s")
            return
        done = [c.result for c in self._table_configs().values()
                if c.result is not None and c.result.latency is not None
                and c.result.throughput is not None]
        timeline.show([r.latency.percentiles.get("p99", 0.0) for r in done],  # type: ignore
                      [r.throughput.samples_per_s for r in done],  # type: ignore
                      "one point per configuration" if done else "")

    # -- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        if action in _PLAN_ACTIONS and self.run_active:
            return None  # greyed in the footer: stop the run first
        return True

    def action_toggle_run(self) -> None:
        if self.run_active:
            self.request_stop()
        else:
            self.start_run()

    def action_sweep(self, axis: str) -> None:
        if self.plan is None:
            self.notice("error", "no preset: p picks one")
            return
        title, what, fallback = SWEEP_AXES[axis]
        current = axis_values(self.plan, axis)
        default = fmt_values(current) if len(current) > 1 else fallback

        def parse(text: str) -> tuple:
            values = self.catalog.parse_ints(text, what)
            problem = self._check_overrides({axis: values})
            if problem:
                raise UserError(problem)
            return values

        def done(values: Optional[tuple]) -> None:
            if values and self._apply_overrides({axis: values}):
                self.start_run()

        self.push_screen(ValuesPrompt(
            f"{title}: {what} to measure",
            f"Comma-separated whole numbers; now {fmt_values(current)}. "
            "The other settings stay as they are.", default, parse), done)

    def action_pick_preset(self) -> None:
        try:
            presets = self.catalog.presets()
        except UserError as exc:
            self.notice("error", str(exc))
            presets = []
        current = self.preset.name if self.preset is not None else None

        def done(name: Optional[str]) -> None:
            if name:
                self.switch_preset(name)

        self.push_screen(PresetPicker(presets, current), done)

    def action_edit(self) -> None:
        if self.plan is None or self.preset is None:
            self.notice("error", "no preset: p picks one")
            return
        shown = present.edit_values(self.plan)

        def done(form: Optional[Dict[str, Any]]) -> None:
            if form is None:
                return
            changes = present.changed_fields(form, shown)
            if changes and self._apply_overrides(changes):
                self.notice("info", f"configuration changed: {present.plan_summary(self.plan)}")

        self.push_screen(EditScreen(
            shown, self.catalog.parse_ints,
            lambda form: self._check_overrides(present.changed_fields(form, shown))), done)

    def action_save(self) -> None:
        viewed = self.viewing[1] if self.viewing is not None else None
        session = viewed or self.sessions.session
        if not session.results:
            self.notice("warning", "nothing to save yet: no configuration has finished")
            return
        name = str(session.preset.get("name") or "session")
        default = self.sessions.path if viewed is None and self.sessions.path else \
            self.sessions.default_path(name)
        try:
            default.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass

        def done(text: Optional[str]) -> None:
            if text:
                self.sessions.save_as(Path(text).expanduser(), viewed)

        self.push_screen(PathPrompt("Save the session (JSON)", str(default), _check_save),
                         done)

    def action_open(self) -> None:
        recent = self.sessions.recent()
        default = recent[0] if recent else str(self.sessions.directory) + "/"

        def done(text: Optional[str]) -> None:
            if text:
                self._open_path(text)

        self.push_screen(PathPrompt("Open a saved session", default, _check_open, recent,
                                    action="open"), done)

    def action_pause(self) -> None:
        self.display_paused = not self.display_paused
        self.refresh_panes()

    def action_refresh_rate(self, factor: float) -> None:
        self.refresh_s = min(5.0, max(0.25, self.refresh_s * factor))
        self.notice("info", f"panes redraw every {self.refresh_s:g} s")

    def action_sort(self, number: int) -> None:
        self.query_one(ResultsTable).sort_by_number(number)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self._key_rows()))

    def _key_rows(self) -> List[Tuple[str, str]]:
        """(keys, description) for the app's own bindings as currently mapped, in order."""
        order = [b.description for b in self.BINDINGS if isinstance(b, Binding)]
        keys: Dict[str, List[str]] = {}
        for active in self.active_bindings.values():
            binding = active.binding
            if active.node is self and binding.description in order and \
                    not (binding.id or "").startswith("sort_"):
                keys.setdefault(binding.description, []).append(self.get_key_display(binding))
        rows = [(" ".join(keys[d]), d) for d in order if d in keys]
        rows.append(("1-9, 0", "Sort the results by a column (see below)"))
        rows.append((self.get_key_display(Binding(self.COMMAND_PALETTE_BINDING, "")),
                     "Command palette: presets and actions"))
        return rows

    async def action_quit(self) -> None:
        if not self.run_active:
            self._finish_quit()
            return

        def answer(yes: Optional[bool]) -> None:
            if yes:
                self.quitting = True
                self.request_stop()
                # An engine stuck in model loading must not keep the user waiting forever.
                self.set_timer(15, self._finish_quit)

        self.push_screen(ConfirmScreen(
            "A run is in progress. Stop it, save the finished configurations and quit?"),
            answer)

    def _finish_quit(self) -> None:
        self.sessions.autosave()
        self.exit(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.run_active or self.viewing is not None:
            self.refresh_panes()

    def on_unmount(self) -> None:
        if self.handle is not None:
            self.handle.stop()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, callback in (
            ("Run / stop", "Start the current plan, or stop the run", self.action_toggle_run),
            ("Batch-size sweep", "Ask for batch sizes and run them",
             partial(self.action_sweep, "batch_sizes")),
            ("Copies sweep", "Ask for copy counts and run them",
             partial(self.action_sweep, "copies")),
            ("Workers sweep", "Ask for workers per copy and run them",
             partial(self.action_sweep, "workers")),
            ("Pick a preset", "Choose another preset", self.action_pick_preset),
            ("Edit the configuration", "Model, device, sweep, duration, warm-up",
             self.action_edit),
            ("Save the session", "Write the session to a JSON file", self.action_save),
            ("Open a session", "View a saved session", self.action_open),
            ("Pause the display", "Freeze the panes; the run goes on", self.action_pause),
        ):
            yield SystemCommand(title, help_text, callback)


def _check_save(text: str) -> Optional[str]:
    if not text:
        return "give a file name"
    try:
        check_writable(text, what="session")
    except UserError as exc:
        return str(exc)
    return None


def _check_open(text: str) -> Optional[str]:
    try:
        load_session(text)
    except UserError as exc:
        return str(exc)
    return None


def _user_data_dir() -> Path:
    from .prefs import data_dir

    return data_dir()


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
    for path in app.sessions.saved_paths:
        print(f"latency-tui: session saved to {path}")
    return int(code or 0)
