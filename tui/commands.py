"""The command palette: only the app's own commands. Every preset, searchable by name or
description (``PresetCommands``), and the app's actions (``app_commands``, which
``LatencyApp.get_system_commands`` returns in place of Textual's Keys, Maximize, Screenshot and
Theme, which have nothing to do with a benchmark)."""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable

from textual.app import SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keys import ACTIONS, key_display


def app_commands(app: Any) -> Iterable[SystemCommand]:
    """The app's actions for the command palette, each with its key as now mapped."""
    for title, help_text, binding_id in (
        ("Run / stop", "Start the current plan, or stop the run", "run"),
        ("Batch-size sweep", "Ask for batch sizes and run them", "sweep_batch"),
        ("Copies sweep", "Ask for copy counts and run them", "sweep_copies"),
        ("Workers sweep", "Ask for workers per copy and run them", "sweep_workers"),
        ("Pick a preset", "Choose another preset", "preset"),
        ("Edit the configuration", "Model, device, sweep, duration, warm-up", "edit"),
        ("Save the session", "Write the session to a JSON file", "save"),
        ("Open a session", "View a saved session", "open"),
        ("Export the screen", "Save what is on screen as an SVG in the exports folder", "export"),
        ("Pause the display", "Freeze the panes; the run goes on", "pause"),
        ("Help", "Every key, and what the panes show", "help"),
        ("Quit", "Quit; during a run, stop it and save what finished first", "quit"),
    ):
        yield SystemCommand(title, f"{help_text} (key: {key_display(app, binding_id)})",
                            partial(as_key, app, ACTIONS[binding_id]))


def as_key(app: Any, action: str) -> None:
    """Run ``action`` as its key does (``app.run_action``): one that cannot act during a run
    says "stop the run first" from the palette too, rather than acting behind the run."""
    app.call_later(app.run_action, action)


class PresetCommands(Provider):
    def _presets(self):
        try:
            return list(self.app.plans.presets())  # type: ignore[attr-defined]
        except Exception:  # a broken user preset must not break the palette
            return []

    async def discover(self) -> Hits:
        for preset in self._presets():
            yield DiscoveryHit(
                f"preset {preset.name}",
                partial(self.app.switch_preset, preset.name),  # type: ignore[attr-defined]
                help=preset.description,
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for preset in self._presets():
            text = f"preset {preset.name}"
            score = max(matcher.match(text), matcher.match(preset.description) * 0.5)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(self.app.switch_preset, preset.name),  # type: ignore[attr-defined]
                    help=preset.description,
                )
