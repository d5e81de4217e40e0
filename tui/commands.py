"""Command palette provider: every preset, searchable by name or description. The app's
actions are offered beside them through ``LatencyApp.get_system_commands``."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


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
