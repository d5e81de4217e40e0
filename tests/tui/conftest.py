"""Fixtures for the app's tests: real presets (TOML files in the user's preset directory, on
the fake device or the CPU), runs that are scripted (for exact screens) or real (the engine in a
thread on the fake device), fixed monitor readings, a frozen clock and a private data
directory."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any, Optional

import pytest

from latency_tui.core.api import Reading, StaticMonitor, user_preset_dir
from latency_tui.tui.app import LatencyApp

from .scripted import Starter

SIZE = (120, 40)

MONITORS = (
    StaticMonitor("cpu", [Reading("cpu0", 81.0), Reading("cpu1", 74.0),
                          Reading("cpu2", 12.0), Reading("cpu3", None, "offline")]),
    StaticMonitor("memory", [Reading("mem", 13.2, "3.1/23.5 GB")]),
    StaticMonitor("gpu", [Reading("gpu", None, "no NVIDIA driver")]),
)

WARMUP = """
[warmup]
min_iterations = 3
max_iterations = 50
window = 5
max_s = 1.0
"""
PRESETS = {
    "fake-sweep": """
        description = "fake device, batch sizes 1 to 8"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2, 4, 8]
        duration_s = 5
        [device]
        latency_ms = 2.0
    """,
    "cpu-mlp": """
        description = "3-layer MLP on the CPU, batch 1: the quick check"
        [model]
        source = "builtin:mlp"
        [run]
        device = "cpu"
        duration_s = 10
    """,
    "cpu-bert": """
        description = "BERT-style encoder on the CPU, 2 copies x 2 workers"
        [model]
        source = "builtin:bert"
        [run]
        device = "cpu"
        batch_sizes = [8]
        copies = [2]
        workers = [2]
        duration_s = 60
    """,
    "quick": """
        description = "the real engine on the fake device: short; batch 4 fails"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2, 4]
        duration_s = 0.3
        [device]
        mode = "sleep"
        handler = "workloads:fails_at_batch_4"
    """ + WARMUP,
    "slow": """
        description = "the real engine on the fake device, long enough to stop"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2, 4]
        duration_s = 30
        [device]
        latency_ms = 1.0
        mode = "sleep"
    """ + WARMUP,
}


#: What ``api.describe_devices()`` says on a CPU-only host (the app's tests never ask the real
#: one: it imports torch; tests of the device choices replace it).
CPU_ONLY_HOST = [
    {"kind": "cpu", "available": True, "devices": [{"name": "Fake CPU", "logical_cpus": 8}]},
    {"kind": "cuda", "available": False, "devices": [],
     "reason": "this torch (2.0.0+cpu) is a CPU-only build; install a CUDA build"},
    {"kind": "neuron", "available": False, "devices": [],
     "reason": "no Neuron package is installed"},
]


@pytest.fixture(autouse=True)
def described_host(monkeypatch):
    """The host the edit form describes: CPU only, unless a test sets ``host[:]``."""
    from latency_tui.core import api

    host = [dict(entry) for entry in CPU_ONLY_HOST]
    monkeypatch.setattr(api, "describe_devices", lambda: [dict(e) for e in host])
    return host


def write_presets() -> Path:
    directory = user_preset_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in PRESETS.items():
        (directory / f"{name}.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def build_app(tmp_path: Path, preset: Optional[str] = "fake-sweep", **options: Any):
    """An app on the presets above. ``engine=`` options go to every scripted run it starts;
    ``real=True`` runs the real engine in a thread instead."""
    write_presets()
    real = options.pop("real", False)
    engine = dict(options.pop("engine", {}))
    if real:
        engine.setdefault("monitors", MONITORS)
    starter = Starter(real=real, **engine)
    app = LatencyApp(
        preset,
        start_run=starter,
        monitors=options.pop("monitors", MONITORS),
        data_dir=tmp_path / "data",
        clock=options.pop("clock", lambda: 100.0),
        **options,
    )
    app.starter = starter  # type: ignore[attr-defined]  # for the tests to inspect
    return app


@pytest.fixture
def make_app(tmp_path):
    def make(preset: Optional[str] = "fake-sweep", **options: Any) -> LatencyApp:
        return build_app(tmp_path, preset, **options)

    return make


async def finish_run(pilot, timeout: float = 60.0) -> None:
    """Wait until the run has ended and its last events are on screen."""
    app = pilot.app
    for _ in range(int(timeout / 0.02)):
        handle = app.runs.handle
        if handle is None or handle.done:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the run never ended")
    app._tick(force=True)
    await pilot.pause()
    # The session's last save is written by the writer's thread; its notice comes with a tick.
    assert app.sessions.writer.flush(30), "the session's last write never ended"
    app._tick(force=True)
    await pilot.pause()


async def wait_paused(pilot, timeout: float = 10.0) -> None:
    """Wait until the scripted run holds at its ``pause_at`` point, then drain its events."""
    app = pilot.app
    for _ in range(int(timeout / 0.02)):
        if app.starter.handles and app.starter.last.paused.is_set():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the scripted run never reached its pause point")
    app._tick(force=True)
    await pilot.pause()


async def wait_for(pilot, predicate, timeout: float = 30.0) -> None:
    """Tick the app until ``predicate()`` holds (a real run reaching a phase)."""
    for _ in range(int(timeout / 0.02)):
        pilot.app._tick(force=True)
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting on the app")


async def wait_described(pilot, browser, timeout: float = 30.0) -> None:
    """Wait until the session browser's reading thread has described every listed file."""
    for _ in range(int(timeout / 0.02)):
        if browser.described:
            await pilot.pause()
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the session browser never finished reading its files")
