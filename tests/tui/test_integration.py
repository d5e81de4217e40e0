"""The app with the real presets, plan builder and engine: on the fake device in-process, and
the MLP preset in a real terminal (tmux), as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_tui.core.api import load_session
from latency_tui.tui.app import LatencyApp

from .conftest import MONITORS, SIZE, finish_run

REPO = Path(__file__).resolve().parents[2]


async def test_real_engine_and_presets_on_the_fake_device(write_preset, tmp_path):
    preset = write_preset("""
        name = "fake-pair"
        description = "two batch sizes on the fake device"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        duration_s = 0.4
        [device]
        latency_ms = 0.5
        jitter_ms = 0.05
        mode = "sleep"
        [warmup]
        min_iterations = 3
        max_iterations = 50
        window = 5
        max_s = 1.0
    """)
    app = LatencyApp(str(preset), monitors=MONITORS, data_dir=tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.plan.name == "fake-pair" and len(app.plan.configs) == 2
        await pilot.press("r")
        await finish_run(pilot)
        table = app.query_one("#results")
        assert [table.rows_by_key[k].status for k in table.shown_keys] == ["finished"] * 2
        assert app.query_one("#histogram").has_class("-plot")
        session = load_session(app.sessions.path)
        assert [r.config.batch_size for r in session.results] == [1, 2]
        assert all(r.latency.percentiles["p50"] > 0.4 for r in session.results)


def test_first_screen_does_not_import_torch():
    """Importing torch takes seconds; the app must draw before anything touches it."""
    script = """
import asyncio, sys
from latency_tui.tui.app import LatencyApp
async def main():
    app = LatencyApp("cpu-mlp")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.plan is not None
print("torch" in sys.modules)
asyncio.run(main())
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True).stdout


def _wait_for(session: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = _capture(session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in {timeout:g} s; the screen was:\n"
                         f"{_capture(session)}")


def _wait_for_file(session: str, path: Path, timeout: float) -> None:
    """Until ``path`` exists; fails with the terminal's screen if it does not in time."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{path.name} was not written in {timeout:g} s; the screen "
                                 f"was:\n{_capture(session)}")
        time.sleep(0.1)


#: How long the app may take to draw its first screen: a cold start on a loaded host (imports,
#: the first Textual frame) takes several seconds.
COLD_START_S = 30


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_mlp_preset_in_tmux_run_save_quit(tmp_path):
    """A real terminal: open the app on the MLP preset (shortened to 1 s), run it, save the
    session with s, quit with q, and read the file back."""
    config, data = tmp_path / "config", tmp_path / "data"
    presets = config / "latency-tui" / "presets"
    presets.mkdir(parents=True)
    builtin = (REPO / "presets" / "cpu-mlp.toml").read_text()
    quick = builtin.replace('name = "cpu-mlp"', 'name = "mlp-quick"')
    quick = quick.replace("batch_sizes = [1, 8]", "batch_sizes = [1]")
    quick = quick.replace("duration_s = 10", "duration_s = 1")
    (presets / "mlp-quick.toml").write_text(quick)
    target = tmp_path / "saved.json"
    exit_file = tmp_path / "exit"
    name = f"latency-tui-test-{os.getpid()}"
    command = (
        f"cd {REPO} && XDG_CONFIG_HOME={config} XDG_DATA_HOME={data} {sys.executable} -c "
        "'from latency_tui.tui.app import run_app; import sys; "
        "sys.exit(run_app(\"mlp-quick\"))'"
        f"; echo $? > {exit_file}; sleep 30"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command],
                   check=True)
    subprocess.run(["tmux", "resize-window", "-t", name, "-x", "120", "-y", "40"],
                   capture_output=True)
    try:
        screen = _wait_for(name, "IDLE", COLD_START_S)
        assert "preset mlp-quick" in screen and "1 configuration x 1 s" in screen
        subprocess.run(["tmux", "send-keys", "-t", name, "r"], check=True)
        screen = _wait_for(name, "FINISHED", 90)
        # The model's name, shortened in the header where the window is narrower than asked.
        assert "tabular-" in screen and "finished" in screen
        subprocess.run(["tmux", "send-keys", "-t", name, "s"], check=True)
        _wait_for(name, "Save the session (JSON)", 15)
        for keys in (["C-u"], ["-l", str(target)], ["Enter"]):
            subprocess.run(["tmux", "send-keys", "-t", name, *keys], check=True)
            time.sleep(0.3)
        _wait_for_file(name, target, 10)
        _wait_for(name, "saved 1 configuration to", 15)
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        _wait_for_file(name, exit_file, 15)
        assert exit_file.read_text().strip() == "0"
        assert "session saved to" in _capture(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    data_saved = json.loads(target.read_text())
    assert data_saved["preset"]["name"] == "mlp-quick"
    session = load_session(target)
    (result,) = session.results
    assert result.status == "finished" and result.samples > 100
    assert session.model.get("name") == "tabular-mlp"
    autosaved = list((data / "latency-tui" / "sessions").glob("mlp-quick-*.json"))
    assert len(autosaved) == 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_quit_during_a_slow_model_load_in_tmux(tmp_path):
    """A model that takes a minute to load: q, y leaves without waiting for the load (its
    process is ended after a short grace, which test_runcontrol checks; the bound here is a
    loose 10 s, for a loaded host, far below the load's minute), and the terminal is given
    back (no blank screen while the process waits for the load)."""
    config, data = tmp_path / "config", tmp_path / "data"
    presets = config / "latency-tui" / "presets"
    presets.mkdir(parents=True)
    (presets / "slow-load.toml").write_text(
        'name = "slow-load"\n[model]\nsource = "workloads:sleeps_in_load"\n'
        '[run]\ndevice = "cpu"\nbatch_sizes = [1, 2]\nduration_s = 5\n')
    exit_file = tmp_path / "exit"
    name = f"latency-tui-slow-{os.getpid()}"
    command = (
        f"cd {REPO} && PYTHONPATH={REPO / 'tests'} XDG_CONFIG_HOME={config} "
        f"XDG_DATA_HOME={data} {sys.executable} -c "
        "'from latency_tui.tui.app import run_app; import sys; "
        "sys.exit(run_app(\"slow-load\"))'"
        f"; echo $? > {exit_file}; echo LEFT; sleep 30"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command],
                   check=True)
    subprocess.run(["tmux", "resize-window", "-t", name, "-x", "120", "-y", "40"],
                   capture_output=True)
    try:
        _wait_for(name, "IDLE", COLD_START_S)
        subprocess.run(["tmux", "send-keys", "-t", name, "r"], check=True)
        _wait_for(name, "loading workloads:sleeps_in_load", 30)
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        _wait_for(name, "A run is in progress", 15)
        began = time.monotonic()
        subprocess.run(["tmux", "send-keys", "-t", name, "y"], check=True)
        screen = _wait_for(name, "LEFT", 15)
        took = time.monotonic() - began
        assert took < 10, f"quitting took {took:.1f} s"
        assert exit_file.read_text().strip() == "0"
        assert "Traceback" not in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    log = (data / "latency-tui" / "engine.log").read_text()
    assert "Traceback" not in log  # ended, not crashed
