"""The app's conversations: each key that asks something (a sweep's values, a preset, the
configuration, where to save, what to open) pushes its screen and acts on the answer; the
view of a saved session that ``o`` opens; and the check, before a run starts, that this host has
the plan's device.

Every prompt validates through the same plan builder the command line uses, before it closes,
so a bad value never reaches the engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, Optional

from latency_tui.core.api import check_writable, load_session
from latency_tui.core.errors import UserError

from . import bigsweep, present
from .format import fmt_values
from .browser import SessionBrowser
from .screens import EditScreen, PathPrompt, PresetPicker, ValuesPrompt
from .sessions import view_configs
from .widgets.results import ResultsTable
from .widgets.utilisation import UtilisationPane

#: Sweep axis: (prompt title, the field's name as the edit form has it, an example).
SWEEP_AXES = {
    "batch_sizes": ("Batch-size sweep", "batch sizes", "1,2,4,8,16"),
    "copies": ("Copies sweep", "copies", "1,2,4"),
    "workers": ("Workers sweep", "workers per copy", "1,2,4"),
}


def sweep(app: Any, axis: str) -> None:
    plans = app.plans
    if plans.plan is None:
        app.notice("error", "no preset: p picks one")
        return
    title, what, example = SWEEP_AXES[axis]
    current = plans.axis(axis)

    def parse(text: str) -> tuple:
        values = plans.parse_ints(text, what)
        problem = plans.check({axis: values})
        if problem:
            raise UserError(problem)
        return values

    def done(values: Optional[tuple]) -> None:
        # A sweep, not a search asked for with t earlier (a preset's own [search] stays).
        no_search = {"search": None, "p99_ms": None, "p50_ms": None, "max_batch": None}
        if not values:
            return
        changes = {axis: values, **no_search}

        def go() -> None:
            if app.apply_changes(changes):
                run_checked(app)

        bigsweep.confirm_changes(app, changes, "Run it?", go)  # a large sweep asks first

    app.push_screen(ValuesPrompt(  # prefilled with the current values, like every prompt
        f"{title}: {what} to measure",
        f"Comma-separated whole numbers, e.g. {example}; now {fmt_values(current)}. "
        "The other settings stay as they are.", fmt_values(current), parse), done)


def pick_preset(app: Any) -> None:
    try:
        presets = app.plans.presets()
    except UserError as exc:
        app.notice("error", str(exc))
        presets = []
    preset = app.plans.preset
    current = preset.name if preset is not None else None

    def done(name: Optional[str]) -> None:
        if name:
            app.switch_preset(name)

    app.push_screen(PresetPicker(presets, current), done)


def edit(app: Any) -> None:
    plans = app.plans
    if plans.plan is None:
        app.notice("error", "no preset: p picks one")
        return
    shown = present.edit_values(plans.plan)

    def done(form: Optional[Dict[str, Any]]) -> None:
        if form is None:
            return
        changes = present.changed_fields(form, shown)
        if not changes:
            return

        def go() -> None:
            if app.apply_changes(changes):
                app.notice("info", f"configuration changed: {present.plan_summary(plans.plan)}")

        bigsweep.confirm_changes(app, changes, "Keep it (r then runs it)?", go)

    screen = EditScreen(shown, plans.parse_ints,
                        lambda form: plans.check(present.changed_fields(form, shown)),
                        plans.device_choices(shown["device"]))
    app.push_screen(screen, done)
    if plans.described is None:  # this host's devices, read once, off the UI thread

        async def describe() -> None:
            await asyncio.to_thread(plans.describe_devices)
            screen.set_devices(plans.device_choices(shown["device"]))

        app.run_worker(describe(), group="describe-devices")


def run_checked(app: Any) -> None:
    """Start the current plan once its device is known to be on this host; if it is not, say
    why in one notice and start nothing (rather than a run in which every configuration
    fails). The check may import torch (seconds): it runs in a thread, cached after."""
    plans = app.plans
    plan = plans.plan
    if app.run_active:
        return
    if plan is None or plans.device_known(plan):  # cpu, fake, or checked before: at once
        reason = plans.unavailable(plan) if plan is not None else None
        if reason:
            app.notice("error", reason)
        else:
            app.start_run()
        return
    if plans.checking:  # r again while the check runs: it starts the run when it may
        return
    plans.checking = True

    def slow() -> None:
        if plans.checking:
            devices = ", ".join(sorted({c.device for c in plan.configs}))
            app.notice("info", f"checking that this host can run {devices} ...")

    async def check() -> None:
        try:
            reason = await asyncio.to_thread(plans.unavailable, plan)
        finally:
            plans.checking = False
        if reason:
            app.notice("error", reason)
        elif plans.plan is plan:  # the plan did not change meanwhile
            app.start_run()

    app.set_timer(1.0, slow)
    app.run_worker(check(), group="device-check")


def save(app: Any) -> None:
    sessions = app.sessions
    viewed = app.viewing[1] if app.viewing is not None else None
    session = viewed or sessions.session
    if not session.results:
        app.notice("warning", "nothing to save yet: no configuration has finished")
        return
    name = str(session.preset.get("name") or "session")
    default = sessions.path if viewed is None and sessions.path else sessions.default_path(name)
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass

    def done(text: Optional[str]) -> None:
        if text:
            sessions.save_as(Path(text).expanduser(), viewed)

    app.push_screen(PathPrompt("Save the session (JSON)", str(default), _check_save), done)


def open_session(app: Any) -> None:
    """The session browser: recent sessions and the sessions folder, or any path typed."""
    folder = app.sessions.directory
    default = str(app.viewing[0]) if app.viewing is not None else str(folder)

    def done(text: Optional[str]) -> None:
        if text:
            app.open_path(text)

    app.push_screen(SessionBrowser(folder, app.sessions.recent(), default, _check_open), done)


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


def view_session(app: Any, text: str) -> None:
    """Show a saved session through the panes, read-only."""
    path = Path(text).expanduser()
    try:
        session = load_session(path)
    except UserError as exc:
        app.notice("error", str(exc))
        return
    app.viewing = (path, session)
    app.view_configs = view_configs(session)
    app.panes.forget_histogram()
    app.query_one(UtilisationPane).set_absent("viewing a saved session")
    app.notice("info", f"viewing {path}: {len(session.results)} configurations "
                       "(read-only; r runs the current preset)")
    for result in session.results:
        if result.status == "failed":
            app.notice("error", f"{result.config.label}: failed: {result.error}")
    app.refresh_panes()
    app.query_one(ResultsTable).move_cursor(row=0, animate=False)
