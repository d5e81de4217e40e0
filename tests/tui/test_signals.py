"""Signals to the TUI in a real terminal (tmux): SIGINT, SIGTERM and the terminal hanging up
(SIGHUP, as when an SSH link drops) each save what finished and the configuration in progress
as cancelled, restore the terminal, exit 128 + the signal, and leave no process behind and no
semaphore in /dev/shm."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from latency_tui.core.api import load_session

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "tests" / "workloads.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /dev/shm"),
]

PRESET = """
name = "two-steps"
[model]
source = "builtin:noop"
[run]
device = "fake"
batch_sizes = [1, 2]
copy_mode = "{mode}"
samples = 300
duration_s = 60
[device]
mode = "sleep"
handler = "{workloads}:slow_at_batch_2"
[warmup]
min_iterations = 3
max_iterations = 20
window = 5
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def start_app(tmp_path: Path, name: str, mode: str) -> dict:
    config, data = tmp_path / "config", tmp_path / "data"
    (config / "latency-tui" / "presets").mkdir(parents=True)
    preset = config / "latency-tui" / "presets" / "two-steps.toml"
    preset.write_text(textwrap.dedent(PRESET.format(mode=mode, workloads=WORKLOADS)))
    files = {"pid": tmp_path / "pid", "exit": tmp_path / "exit", "session": tmp_path / "s.json"}
    script = (f"import os; open({str(files['pid'])!r}, 'w').write(str(os.getpid())); "
              "from latency_tui.tui.app import run_app; import sys; "
              f"sys.exit(run_app('two-steps', session_path={str(files['session'])!r}))")
    command = (f"cd {REPO} && XDG_CONFIG_HOME={config} XDG_DATA_HOME={data} "
               f"{sys.executable} -c \"{script}\"; echo $? > {files['exit']}; sleep 60")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", command],
                   check=True)
    return files


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def running_second(name: str, files: dict) -> psutil.Process:
    """Start the run and wait until the second configuration measures (the first finished)."""
    wait_for(lambda: files["pid"].exists() and "IDLE" in tmux("capture-pane", "-p", "-t", name),
             20, "the first screen")
    tmux("send-keys", "-t", name, "r")
    wait_for(lambda: "config 2/2" in tmux("capture-pane", "-p", "-t", name) and "measuring" in
             tmux("capture-pane", "-p", "-t", name), 60, "the second configuration")
    return psutil.Process(int(files["pid"].read_text()))


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a dead process whose parent has not reaped it yet: in a
    container, an orphan's new parent may never reap it; it holds nothing but its pid)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def semaphores() -> set:
    return {p for p in os.listdir("/dev/shm") if p.startswith("sem.")}


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_stops_restores_the_terminal_and_exits_with_its_code(tmp_path, signum, code):
    name = f"latency-tui-signal-{os.getpid()}-{signum}"
    files = start_app(tmp_path, name, "thread")
    try:
        app = running_second(name, files)
        app.send_signal(signum)
        wait_for(lambda: files["exit"].exists(), 20, "the app to exit")
        assert files["exit"].read_text().strip() == str(code)
        assert tmux("display", "-p", "-t", name, "#{alternate_on}").strip() == "0"
    finally:
        tmux("kill-session", "-t", name)
    session = load_session(files["session"])
    assert [r.status for r in session.results] == ["finished", "cancelled"]


def test_the_terminal_hanging_up_leaves_no_process_and_no_semaphore(tmp_path):
    before = semaphores()
    name = f"latency-tui-hangup-{os.getpid()}"
    files = start_app(tmp_path, name, "process")
    try:
        app = running_second(name, files)
        family = [app, *app.children(recursive=True)]
        assert len(family) >= 3  # the app, its engine, the engine's copy
        tmux("kill-session", "-t", name)  # SIGHUP to everything in the pane
        wait_for(lambda: not [p for p in family if running(p)], 15, "every process to end")
    finally:
        tmux("kill-session", "-t", name)
    assert semaphores() - before == set()
    statuses = [r["status"] for r in json.loads(files["session"].read_text())["results"]]
    assert statuses[0] == "finished"
