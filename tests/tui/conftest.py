"""Fixtures for the app's tests: an app wired to the scripted fake engine and presets, with
fixed monitor readings, a frozen clock and a private data directory, so that every run of a
test (and every snapshot) sees the same screen."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import pytest

from latency_tui.tui.app import LatencyApp
from latency_tui.tui.fake import FakeCatalog, FakeEngineFactory
from latency_tui.tui.monitors import Reading, StaticMonitor

SIZE = (120, 40)

MONITORS = (
    StaticMonitor("cpu", [Reading("cpu0", 81.0), Reading("cpu1", 74.0),
                          Reading("cpu2", 12.0), Reading("cpu3", None, "offline")]),
    StaticMonitor("memory", [Reading("mem", 13.2, "3.1/23.5 GB")]),
    StaticMonitor("gpu", [Reading("gpu", None, "no NVIDIA driver")]),
)


def build_app(tmp_path: Path, preset: Optional[str] = "fake-sweep", **options: Any):
    """An app on the fake engine; ``engine=`` options go to every FakeEngine it makes."""
    factory = FakeEngineFactory(**options.pop("engine", {}))
    app = LatencyApp(
        preset,
        engine_factory=factory,
        catalog=options.pop("catalog", None) or FakeCatalog(),
        monitors=options.pop("monitors", MONITORS),
        data_dir=tmp_path / "data",
        clock=options.pop("clock", lambda: 100.0),
        **options,
    )
    app.factory = factory  # type: ignore[attr-defined]  # for the tests to inspect
    return app


@pytest.fixture
def make_app(tmp_path):
    def make(preset: Optional[str] = "fake-sweep", **options: Any) -> LatencyApp:
        return build_app(tmp_path, preset, **options)

    return make


async def finish_run(pilot) -> None:
    """Wait until the engine worker is done and its last events are on screen."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    pilot.app._tick(force=True)
    await pilot.pause()


async def wait_paused(pilot, timeout: float = 10.0) -> None:
    """Wait until the fake engine holds at its ``pause_at`` point, then drain its events."""
    app = pilot.app
    for _ in range(int(timeout / 0.02)):
        if app.factory.engines and app.factory.last.paused.is_set():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the fake engine never reached its pause point")
    app._tick(force=True)
    await pilot.pause()
