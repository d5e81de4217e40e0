"""The command line as a user meets it: exit codes, messages, tables and session files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latency_tui.tui.cli import main

WORKLOADS = Path(__file__).parent / "workloads.py"


def cli(*args, timeout=300, **env):
    return subprocess.run(
        [sys.executable, "-m", "latency_tui.tui", *args], capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **env},
    )


@pytest.mark.slow
def test_run_cpu_mlp_end_to_end(tmp_path):
    session = tmp_path / "s.json"
    done = cli("run", "--preset", "cpu-mlp", "--duration", "1", "--json", str(session))
    assert done.returncode == 0, done.stderr
    for column in ("batch", "copies", "workers", "inf/s", "p50 ms", "p99 ms", "status"):
        assert column in done.stdout
    assert done.stdout.count("finished") == 2
    assert "Traceback" not in done.stderr
    assert "warm-up" in done.stderr and "measuring" in done.stderr  # plain progress lines
    data = json.loads(session.read_text())
    assert [r["config"]["batch_size"] for r in data["results"]] == [1, 8]
    assert data["model"]["source"] == "builtin:mlp" and data["model"]["parameters"] > 1000
    assert all(r["latency_ms"]["p50"] > 0 for r in data["results"])
    shown = cli("show", str(session))
    assert shown.returncode == 0 and shown.stdout.count("finished") == 2


def test_run_with_the_default_session_path(capsys):
    code = main(["run", "--model", "builtin:noop", "--device", "fake", "--duration", "0.2", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    path = Path(err.split("session written to ", 1)[1].split()[0])
    assert path.is_file() and "latency-tui" in str(path)


def test_a_preset_named_with_a_slash_writes_its_session_in_the_sessions_folder(
        write_preset, capsys, isolated_user_dirs):
    preset = write_preset("""
        name = "team/model"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        duration_s = 0.1
    """)
    assert main(["run", "--preset", str(preset), "--quiet"]) == 0
    path = Path(capsys.readouterr().err.split("session written to ", 1)[1].split()[0])
    assert path.is_file() and path.name.startswith("team_model-")
    assert path.parent.name == "sessions"


def test_a_model_that_raises_fails_its_configuration_and_exits_1(tmp_path, capsys):
    session = tmp_path / "s.json"
    code = main(["run", "--model", f"{WORKLOADS}:fails_at_batch_8", "--batch-sizes", "1,8",
                 "--duration", "0.2", "--json", str(session), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: ValueError: batch 8 is not supported" in out
    statuses = [r["status"] for r in json.loads(session.read_text())["results"]]
    assert statuses == ["finished", "failed"]


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["run", "--preset", "missing.toml"], "preset file missing.toml: no such file"),
    (["run", "--model", "builtin:nope"], "--model 'builtin:nope': unknown built-in model"),
    (["run", "--model", "nowhere/net.py:Net"], "no such file nowhere/net.py"),
    (["run", "--device", "tpu"], "--device 'tpu': unknown device"),
    (["run", "--json", "/proc/latency.json"], "--json /proc/latency.json: not writable"),
    (["run", "--json", "/no/such/dir/s.json"], "directory /no/such/dir does not exist"),
    (["show", "/no/such/session.json"], "/no/such/session.json: No such file"),
    (["run", "--model", "os:no_such_attribute"], "module 'os' has no attribute 'no_such_attribute'"),
    (["run", "--model", f"{WORKLOADS}:missing"], "workloads.py has no attribute 'missing'"),
    (["run", "--model", "builtin:mlp", "--duration", "1e300"], "--duration: must be more than 0 and at most"),
    (["run", "--json", ""], "--json: must not be empty"),
    (["run", "--device", ""], "--device: must not be empty"),
])
def test_bad_input_exits_2_with_one_line_naming_it(args, message, capsys, isolated_user_dirs):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(isolated_user_dirs.rglob("*.json"))  # nothing half-written anywhere


@pytest.mark.parametrize("args, message", [
    (["run", "--batch-sizes", "0"], "argument --batch-sizes: 0 must be at least 1"),
    (["run", "--batch-sizes=-2,4"], "must be at least 1"),
    (["run", "--batch-sizes", "eight"], "'eight' is not an integer"),
    (["run", "--duration", "0"], "argument --duration: must be a finite number more than 0"),
    (["run", "--duration", "inf"], "must be a finite number more than 0, not inf"),
    (["run", "--duration", "nan"], "must be a finite number more than 0, not nan"),
    (["run", "--copy-mode", "fork"], "invalid choice: 'fork'"),
    (["run", "--samples", "0"], "must be at least 1"),
])
def test_bad_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("preset_text, message", [
    ("[model\n", "malformed TOML"),
    ('[model]\nsource = "builtin:mlp"\n[run]\nbatch_sizes = [0]\n', "run.batch_sizes must be"),
    ('[model]\nsource = "builtin:mlp"\n[run]\nduration_s = 0\n', "run.duration_s must be > 0"),
    ('[run]\ndevice = "cpu"\n', "[model] with a source is required"),
    ('[model]\nsource = "builtin:mlp"\n[run]\nduration_s = inf\n', "run.duration_s must be a finite number"),
    ('[model]\nsource = "builtin:mlp"\n[warmup]\ntolerance = nan\n', "warmup.tolerance must be a finite"),
    ('[model]\nsource = "builtin:mlp"\n[model.options]\nhiden = 3\n', "unknown option 'hiden'"),
    ('[model]\nsource = "builtin:noop"\npreprocess = "no_module_xyz:f"\n', "no module named 'no_module_xyz'"),
    ('[model]\nsource = "builtin:mlp"\n[[inputs.tensors]]\nshape = [4]\ndtype = "float33"\n',
     "unknown dtype 'float33'"),
    ('[model]\nsource = "builtin:mlp"\n[[inputs.tensors]]\nshape = [4]\ndtype = "int64"\nlow = 5\nhigh = 1\n',
     "high (1) must be greater than low (5)"),
    ('[model]\nsource = "builtin:mlp"\n[run]\ndevice = "tpu"\n', "run.device 'tpu': unknown device"),
    ("[model]\nsource = \"builtin:mlp\"\n[device]\nthreads = 4\n",
     "unknown for the cpu device (known: none; threads per copy are run.threads_per_copy)"),
])
def test_bad_preset_file_exits_2_and_writes_nothing(write_preset, tmp_path, preset_text, message, capsys):
    path = write_preset(preset_text)
    session = tmp_path / "out.json"
    assert main(["run", "--preset", str(path), "--json", str(session)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not session.exists()


def test_presets_lists_the_builtins(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("cpu-mlp", "cpu-bert", "bert-base-cased"):
        assert name in out


def test_help_and_version_answer_fast_without_importing_torch():
    code = ("import sys, time; t = time.perf_counter(); from latency_tui.tui.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit: pass\n"
            "assert 'torch' not in sys.modules and 'textual' not in sys.modules, sorted(sys.modules)\n"
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("latency-tui ")
    started = time.perf_counter()
    helped = cli("--help")
    assert helped.returncode == 0 and "run" in helped.stdout and "presets" in helped.stdout
    # A generous bound for a loaded CI machine; the README quotes the measured figure.
    assert time.perf_counter() - started < 5


@pytest.mark.slow
@pytest.mark.parametrize("copy_mode", ["thread", "process"])
def test_interrupt_keeps_the_configuration_in_progress_as_cancelled(tmp_path, copy_mode):
    """^C (SIGINT to the whole process group, as a terminal sends it) stops the run within an
    inference, saves the configuration in progress as cancelled and exits 130."""
    import signal

    session = tmp_path / "s.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "latency_tui.tui", "run", "--model", f"{WORKLOADS}:slow_factory",
         "--workers", "1,2", "--copy-mode", copy_mode, "--copies", "2" if copy_mode == "process" else "1",
         "--duration", "60", "--json", str(session)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen = ""
        while "measuring" not in seen and time.monotonic() < deadline:
            seen += process.stderr.readline()
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    results = json.loads(session.read_text())["results"]
    assert [r["status"] for r in results] == ["cancelled"]
    assert results[0]["samples"] > 0 and results[0]["latency_ms"]["p50"] >= 20


def test_an_open_loop_run_with_early_stop_from_the_command_line(tmp_path, capsys):
    session = tmp_path / "s.json"
    code = main(["run", "--model", "builtin:noop", "--device", "fake", "--batch-sizes", "1",
                 "--mode", "open",
                 "--rate", "200", "--arrivals", "constant", "--duration", "0.6",
                 "--early-stop", "50", "--json", str(session), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "rate" in out and "200/s constant" in out
    (result,) = json.loads(session.read_text())["results"]
    assert result["config"]["rate"] == 200.0 and result["config"]["arrivals"] == "constant"
    loop = result["details"]["open_loop"]
    assert loop["intended_rate_per_s"] == 200.0 and loop["served"] == result["samples"] > 0
    assert set(result["details"]["early_stop"]) >= {"target_pct", "stopped_early", "at_s"}
    assert set(result["stages_ms"]) == {"service", "queue"}
    shown = main(["show", str(session)])
    assert shown == 0 and "200/s constant" in capsys.readouterr().out  # from the details


@pytest.mark.parametrize("args, message", [
    (["run", "--rate", "0"], "argument --rate: must be a finite number more than 0, not 0"),
    (["run", "--rate", "fast"], "'fast' is not a number of requests per second"),
    (["run", "--rate", "nan"], "must be a finite number more than 0, not nan"),
    (["run", "--mode", "ajar"], "invalid choice: 'ajar'"),
    (["run", "--arrivals", "bursty"], "invalid choice: 'bursty'"),
    (["run", "--early-stop", "100"], "argument --early-stop: must be more than 0 and below 100"),
    (["run", "--early-stop", "five"], "'five' is not a percentage"),
])
def test_bad_load_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--mode", "open"], "--mode open: give --rate"),
    (["--mode", "closed", "--rate", "10"], "--rate: needs --mode open"),
    (["--arrivals", "constant"], "--arrivals: needs --mode open"),
])
def test_inconsistent_load_arguments_exit_2_with_one_line(args, message, capsys):
    assert main(["run", "--model", "builtin:noop", "--device", "fake", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
