"""The app's keys (bindings with ids that keys.toml can remap), what help lists for them, and
the actions the command palette offers beside the presets."""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, Iterable, List, Tuple

from textual.binding import Binding
from textual.app import SystemCommand

#: The three sweep keys share one footer entry ("b c w Sweep"), so that every key fits at 80.
_SWEEP = Binding.Group("Sweep")

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
    Binding("plus,equals_sign", "refresh_rate(0.5)", "Redraw faster", show=False, id="faster"),
    Binding("minus", "refresh_rate(2.0)", "Redraw slower", show=False, id="slower"),
    *[Binding(str(n), f"sort({n})", f"Sort results by column {n}", show=False,
              id=f"sort_{n}") for n in range(10)],
]


def key_rows(app: Any) -> List[Tuple[str, str]]:
    """(keys, description) for the app's own bindings as currently mapped, in order."""
    order = [b.description for b in BINDINGS]
    keys: Dict[str, List[str]] = {}
    for active in app.active_bindings.values():
        binding = active.binding
        if active.node is app and binding.description in order and \
                not (binding.id or "").startswith("sort_"):
            keys.setdefault(binding.description, []).append(app.get_key_display(binding))
    rows = [(" ".join(keys[d]), d) for d in order if d in keys]
    rows.append(("1-9, 0", "Sort the results by a column (see below)"))
    rows.append((app.get_key_display(Binding(app.COMMAND_PALETTE_BINDING, "")),
                 "Command palette: presets and actions"))
    return rows


def system_commands(app: Any) -> Iterable[SystemCommand]:
    """The app's actions for the command palette."""
    for title, help_text, callback in (
        ("Run / stop", "Start the current plan, or stop the run", app.action_toggle_run),
        ("Batch-size sweep", "Ask for batch sizes and run them",
         partial(app.action_sweep, "batch_sizes")),
        ("Copies sweep", "Ask for copy counts and run them", partial(app.action_sweep, "copies")),
        ("Workers sweep", "Ask for workers per copy and run them",
         partial(app.action_sweep, "workers")),
        ("Pick a preset", "Choose another preset", app.action_pick_preset),
        ("Edit the configuration", "Model, device, sweep, duration, warm-up", app.action_edit),
        ("Save the session", "Write the session to a JSON file", app.action_save),
        ("Open a session", "View a saved session", app.action_open),
        ("Pause the display", "Freeze the panes; the run goes on", app.action_pause),
    ):
        yield SystemCommand(title, help_text, callback)
