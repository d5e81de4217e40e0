"""The preset the user chose, the changes they made to it, and the plan both make; no Textual.

The app never builds a plan itself. It keeps the user's changes as a dict of override fields
(the names of ``core.api.Overrides``) and asks the core to resolve them, so the TUI and the
headless command line validate a configuration with the same code and the same messages.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from latency_tui.core import api
from latency_tui.core.errors import UserError
from latency_tui.core.specs import RunPlan


class PlanState:
    def __init__(self) -> None:
        self.preset: Optional[api.Preset] = None
        self.overrides: Dict[str, Any] = {}
        self.plan: Optional[RunPlan] = None

    @staticmethod
    def presets() -> List[api.Preset]:
        return list(api.list_presets())

    @staticmethod
    def default_name() -> Optional[str]:
        """The preset opened when none is named: the default one if it exists, else the first."""
        names = [p.name for p in api.list_presets()]
        if api.DEFAULT_PRESET in names:
            return api.DEFAULT_PRESET
        return names[0] if names else None

    def load(self, name_or_path: str) -> RunPlan:
        """Make ``name_or_path`` (a preset name or a TOML path) current, with no changes."""
        preset = api.load_preset(name_or_path)
        plan = api.plan_with(preset, {})
        self.preset, self.overrides, self.plan = preset, {}, plan
        return plan

    def check(self, changes: Dict[str, Any]) -> Optional[str]:
        """The plan builder's objection to these changes, or None."""
        if self.preset is None:
            return "no preset: p picks one"
        try:
            api.plan_with(self.preset, {**self.overrides, **changes})
        except UserError as exc:
            return str(exc)
        return None

    def apply(self, changes: Dict[str, Any]) -> RunPlan:
        """Add ``changes`` to the overrides and rebuild the plan (``UserError`` if it cannot)."""
        if self.preset is None:
            raise UserError("no preset: p picks one")
        plan = api.plan_with(self.preset, {**self.overrides, **changes})
        self.overrides = {**self.overrides, **changes}
        self.plan = plan
        return plan

    def axis(self, name: str) -> Tuple[int, ...]:
        return self.plan.axis(name) if self.plan is not None else ()

    @staticmethod
    def parse_ints(text: str, what: str) -> Tuple[int, ...]:
        return api.parse_int_list(text, what)
