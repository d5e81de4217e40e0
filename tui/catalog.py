"""Where the app gets presets and run plans: a thin seam over ``core.presets`` and ``core.plan``.

The app never builds a plan itself. It keeps the user's changes as a dict of override fields
(the names of ``core.plan.Overrides``) and asks a catalog to resolve them, so the TUI and the
headless command line validate a configuration with the same code and the same messages. Tests
pass ``fake.FakeCatalog`` instead, whose presets never change under them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from latency_tui.core.specs import RunPlan

try:
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]

#: The fields a user may override, as in ``core.plan.Overrides``.
OVERRIDE_FIELDS = (
    "model", "device", "batch_sizes", "copies", "workers", "copy_mode", "duration_s",
    "samples", "warmup_max_s",
)
#: The preset opened when none is named, if it exists.
DEFAULT_PRESET = "cpu-mlp"


class PresetLike(Protocol):
    name: str
    description: str


class Catalog(Protocol):
    def presets(self) -> Sequence[PresetLike]: ...

    def load(self, name_or_path: str) -> PresetLike: ...

    def build(self, preset: PresetLike, overrides: Dict[str, Any]) -> RunPlan: ...

    def parse_ints(self, text: str, what: str) -> Tuple[int, ...]: ...


class CoreCatalog:
    """The real presets and plan builder; imported on first use (they read TOML files)."""

    def presets(self) -> List[PresetLike]:
        from latency_tui.core.presets import list_presets

        return list(list_presets())

    def load(self, name_or_path: str) -> PresetLike:
        from latency_tui.core.presets import load_preset

        return load_preset(name_or_path)

    def build(self, preset: PresetLike, overrides: Dict[str, Any]) -> RunPlan:
        from latency_tui.core.plan import Overrides, build_plan

        return build_plan(preset, Overrides(**overrides))  # type: ignore[arg-type]

    def parse_ints(self, text: str, what: str) -> Tuple[int, ...]:
        from latency_tui.core.plan import parse_int_list

        return parse_int_list(text, what)


def default_preset_name(catalog: Catalog) -> Optional[str]:
    names = [p.name for p in catalog.presets()]
    if DEFAULT_PRESET in names:
        return DEFAULT_PRESET
    return names[0] if names else None


def axis_values(plan: RunPlan, axis: str) -> Tuple[int, ...]:
    """The distinct values a plan sweeps on one axis, in first-seen order."""
    attribute = {"batch_sizes": "batch_size", "copies": "copies", "workers": "workers_per_copy"}
    seen: List[int] = []
    for config in plan.configs:
        value = getattr(config, attribute[axis])
        if value not in seen:
            seen.append(value)
    return tuple(seen)
