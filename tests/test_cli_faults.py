"""The command line under faults and hostile input, as a user's shell meets it (a subprocess):
session targets that are not files, hung models, signals, markup and escape sequences, user code
that exits, broken presets, limits, and what the current directory may not do."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = REPO / "tests" / "workloads.py"


#: The console script a user runs (``python -m`` would put the current directory on the path).
SCRIPT = [str(Path(sys.executable).with_name("latency-tui"))]


def cli(*args, cwd=None, env=None, timeout=120, **kwargs):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([*SCRIPT, *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=environment,
                          **kwargs)


def fake_preset(tmp_path, name="fake.toml", **run):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in run.items())
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        {lines}
        [device]
        latency_ms = 0.5
        mode = "sleep"
        [warmup]
        min_iterations = 3
        max_iterations = 30
        window = 5
    """))
    return path


def no_traceback(proc):
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_json_to_a_device_is_refused_and_the_device_stays_a_device(tmp_path):
    proc = cli("run", "--preset", str(fake_preset(tmp_path)), "--json", "/dev/null")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    no_traceback(proc)


def test_json_to_a_fifo_or_a_directory_is_refused_before_anything_runs(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, words in ((fifo, "not a regular file"), (tmp_path, "is a directory")):
        began = time.monotonic()
        proc = cli("run", "--preset", str(fake_preset(tmp_path)), "--json", str(target))
        assert proc.returncode == 2 and words in proc.stderr
        assert time.monotonic() - began < 30  # refused at once, not after measuring
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_model_that_hangs_ends_as_a_timeout_within_its_bound(tmp_path, mode):
    target = tmp_path / "s.json"
    began = time.monotonic()
    proc = cli("run", "--model", f"{WORKLOADS}:hangs_in_forward", "--batch-sizes", "1",
               "--copy-mode", mode, "--duration", "3", "--json", str(target), "--quiet")
    assert time.monotonic() - began < 45
    assert proc.returncode == 1, proc.stderr[-2000:]
    (result,) = json.loads(target.read_text())["results"]
    assert result["status"] == "failed" and result["error_kind"] == "timeout"
    no_traceback(proc)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGHUP, 129)])
def test_a_signal_while_a_model_hangs_keeps_what_finished_and_exits_with_its_code(
        tmp_path, signum, code):
    target = tmp_path / "s.json"
    preset = tmp_path / "p.toml"
    preset.write_text(textwrap.dedent(f"""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        samples = 200
        duration_s = 60
        [device]
        mode = "sleep"
        handler = "{WORKLOADS}:hangs_at_batch_2"
        [warmup]
        min_iterations = 3
        max_iterations = 20
        window = 5
    """))
    proc = subprocess.Popen([*SCRIPT, "run", "--preset",
                             str(preset), "--json", str(target), "--quiet"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: target.exists(), 60)  # the first configuration finished
        time.sleep(1.0)  # the second one hangs
        began = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - began < 10
    assert proc.returncode == code, err[-2000:]
    statuses = [r["status"] for r in json.loads(target.read_text())["results"]]
    assert statuses == ["finished", "cancelled"]
    assert "Traceback" not in err and "batch" in out  # the table was printed
    assert not list(tmp_path.glob(".*.tmp"))


def test_markup_and_escape_sequences_from_a_model_are_shown_as_text(tmp_path):
    target = tmp_path / "s.json"
    proc = cli("run", "--model", f"{WORKLOADS}:fails_with_markup", "--device", "cpu",
               "--workers", "1,2", "--duration", "0.2", "--json", str(target))
    assert proc.returncode == 1
    no_traceback(proc)
    assert "MarkupError" not in proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert proc.stdout.count("failed") == 2  # the sweep went on after the first failure
    assert "[/data/models]" in proc.stdout.replace("\n", "") or "/data/models" in proc.stdout
    shown = cli("show", str(target))
    assert shown.returncode == 0 and "\x1b" not in shown.stdout
    no_traceback(shown)


def test_a_preset_named_with_markup_is_listed(tmp_path):
    config = tmp_path / "config"
    folder = config / "latency-tui" / "presets"
    folder.mkdir(parents=True)
    (folder / "odd.toml").write_text('name = "[/x] [bold]odd\\u001b[2J"\n[model]\nsource = '
                                     '"builtin:noop"\n')
    proc = cli("presets", env={"XDG_CONFIG_HOME": str(config)})
    assert proc.returncode == 0
    no_traceback(proc)
    assert "[/x]" in proc.stdout and "\x1b" not in proc.stdout


def test_a_session_with_escape_sequences_is_shown_escaped(tmp_path):
    session = {
        "schema": "latency-tui/session", "schema_version": 2, "created": "\x1b]0;pwned\x07",
        "preset": {"name": "\x1b[31mred[/]"}, "model": {"source": "x"}, "host": {},
        "results": [{"config": {"device": "cpu", "batch_size": 1, "copies": 1,
                                "workers_per_copy": 1}, "status": "failed",
                     "error": "boom \x1b[2J [/bold]"}],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(session))
    proc = cli("show", str(path))
    assert proc.returncode == 0
    no_traceback(proc)
    assert "\x1b" not in proc.stdout and "\\x1b" in proc.stdout


def test_sys_exit_at_import_is_refused_with_a_reason_not_a_false_success(tmp_path):
    model = tmp_path / "exits.py"
    model.write_text("import sys\nsys.exit(0)\ndef make():\n    return (lambda: None), ()\n")
    proc = cli("run", "--model", f"{model}:make", "--device", "cpu", "--json",
               str(tmp_path / "s.json"))
    assert proc.returncode == 2
    assert "called sys.exit(0)" in proc.stderr
    assert not (tmp_path / "s.json").exists()


def test_sys_exit_in_a_factory_is_bad_input_found_before_running(tmp_path):
    # The planner loads the model (its trial call): a factory that exits is refused there,
    # exit 2 with one line, nothing written, and latency-tui itself does not exit 0.
    target = tmp_path / "s.json"
    proc = cli("run", "--model", f"{WORKLOADS}:exits_in_factory", "--device", "cpu",
               "--batch-sizes", "1", "--json", str(target))
    assert proc.returncode == 2
    assert "exits_in_factory() called sys.exit(0)" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not target.exists()


def test_a_factory_with_argparse_does_not_read_latency_tuis_arguments(tmp_path):
    proc = cli("run", "--model", f"{WORKLOADS}:parses_the_command_line", "--device", "cpu",
               "--batch-sizes", "1", "--duration", "0.2", "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "latency-tui: error: unrecognized arguments" not in proc.stderr


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe[model]\n", "not UTF-8"),
    (b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested"),
    (b'[model]\nsource = "builtin:noop"\n[run]\ndevice = "fake"\n[device]\nlatency_ms = nan\n',
     "device.latency_ms must be a finite number"),
    (b'[model]\nsource = "builtin:noop"\n[run]\ncopies = [100000]\n', "contention"),
    (b'[model]\nsource = "builtin:noop"\n[run]\nworkers = [100000]\n', "workers per copy"),
])
def test_broken_presets_exit_2_with_one_line(tmp_path, content, words):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    proc = cli("run", "--preset", str(path), "--json", str(tmp_path / "s.json"), timeout=60)
    assert proc.returncode == 2 and words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()


def test_a_thousand_process_copies_are_refused_at_planning(tmp_path):
    began = time.monotonic()
    proc = cli("run", "--preset", str(fake_preset(tmp_path)), "--copies", "1000",
               "--copy-mode", "process", "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 2 and "--copies: 1,000 copies" in proc.stderr
    assert time.monotonic() - began < 30


def test_an_unwritable_data_directory_is_exit_2(tmp_path):
    blocked = tmp_path / "data"
    blocked.write_text("a file where the data directory should be")
    proc = cli("run", "--preset", str(fake_preset(tmp_path)),
               env={"XDG_DATA_HOME": str(blocked)})
    assert proc.returncode == 2 and "session directory" in proc.stderr
    no_traceback(proc)


def test_a_torch_py_in_the_current_directory_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "torch.py").write_text(f"open({str(marker)!r}, 'w').write('yes')\n"
                                       "raise SystemExit('shadowed torch')\n")
    proc = cli("run", "--model", "builtin:mlp", "--device", "cpu", "--batch-sizes", "1",
               "--duration", "0.2", "--json", str(tmp_path / "s.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()


def test_a_module_beside_the_user_is_still_found(tmp_path):
    (tmp_path / "mymodel.py").write_text("def make():\n    return (lambda: None), ()\n")
    proc = cli("run", "--model", "mymodel:make", "--device", "cpu", "--batch-sizes", "1",
               "--duration", "0.2", "--json", str(tmp_path / "s.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
def test_process_copies_end_without_traceback_noise(tmp_path):
    """About one copy process in seven printed a TypeError from its listener at shutdown."""
    for attempt in range(4):
        proc = cli("run", "--preset", str(fake_preset(tmp_path, copies=[2], copy_mode="process",
                                                      duration_s=0.3)),
                   "--json", str(tmp_path / f"s{attempt}.json"), "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
        no_traceback(proc)
        assert "TypeError" not in proc.stderr


def test_what_the_model_prints_is_kept_apart_from_the_tools_output(tmp_path):
    data = tmp_path / "data"
    proc = cli("run", "--model", f"{WORKLOADS}:chatty", "--device", "cpu", "--batch-sizes", "1",
               "--duration", "0.2", "--json", str(tmp_path / "s.json"),
               env={"XDG_DATA_HOME": str(data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model says hello" not in proc.stdout and "model warns" not in proc.stderr
    assert "the model printed" in proc.stderr and "model-output.log" in proc.stderr
    log = (data / "latency-tui" / "model-output.log").read_text()
    assert "model says hello" in log and "model warns" in log
    assert "batch" in proc.stdout  # the table, alone on stdout


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "cuda:all"])
def test_cuda_on_a_cpu_only_torch_exits_2_with_one_line_and_writes_nothing(tmp_path, device):
    torch = pytest.importorskip("torch")
    if getattr(torch.version, "cuda", None) is not None:
        pytest.skip("this torch is a CUDA build")
    data = tmp_path / "data"
    target = tmp_path / "s.json"
    proc = cli("run", "--preset", "cpu-mlp", "--device", device, "--json", str(target),
               env={"XDG_DATA_HOME": str(data)}, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "CPU-only build" in lines[0] and repr(device) in lines[0], lines
    assert proc.stdout == ""
    assert not target.exists() and not data.exists()  # no session, no log, no cache


def test_a_model_hanging_on_its_first_inference_obeys_timeout_and_warmup_max(tmp_path):
    """A hang on call 0 waited for warmup.first_timeout_s (600 s) whatever --timeout said."""
    preset = fake_preset(tmp_path)
    preset.write_text(preset.read_text().replace("latency_ms = 0.5", "hang_after = 0"))
    target = tmp_path / "s.json"
    began = time.monotonic()
    proc = cli("run", "--preset", str(preset), "--timeout", "1", "--warmup-max", "2",
               "--duration", "1", "--json", str(target), "--quiet", timeout=60)
    assert time.monotonic() - began < 30
    assert proc.returncode == 1, proc.stderr[-2000:]
    (result,) = json.loads(target.read_text())["results"]
    assert result["error_kind"] == "timeout" and "timeout of 2 s" in result["error"]
    no_traceback(proc)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs and /dev/zero")
def test_show_and_presets_refuse_fifos_and_devices_with_one_line_never_hanging(tmp_path):
    fifo = tmp_path / "s.json"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        proc = cli("show", str(path), timeout=30)  # a FIFO hung; /dev/zero ran out of memory
        assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr
    folder = tmp_path / "config" / "latency-tui" / "presets"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "stuck.toml")
    listed = cli("presets", env={"XDG_CONFIG_HOME": str(tmp_path / "config")}, timeout=30)
    assert listed.returncode == 0 and "cpu-mlp" in listed.stdout  # the FIFO is skipped
    named = cli("run", "--preset", str(folder / "stuck.toml"), timeout=30)
    assert named.returncode == 2 and "not a regular file" in named.stderr
    no_traceback(listed)
    no_traceback(named)


def test_json_at_a_symlink_loop_is_exit_2_with_one_line(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    proc = cli("run", "--preset", str(fake_preset(tmp_path)), "--json", str(loop), timeout=60)
    assert proc.returncode == 2 and "symbolic link" in proc.stderr and str(loop) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    no_traceback(proc)


@pytest.mark.parametrize("step", ["load_preset", "check_sources"])
def test_ctrl_c_before_the_run_begins_exits_130_with_one_line(monkeypatch, capsys, tmp_path, step):
    """^C while modules load (or a user module is imported) printed a traceback, exit -2."""
    from latency_tui.core import api
    from latency_tui.tui.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, step, interrupted)
    code = main(["run", "--preset", str(fake_preset(tmp_path)), "--json",
                 str(tmp_path / "s.json"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip() == "latency-tui: interrupted" and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()


def test_presets_shows_copies_all_as_all(tmp_path):
    folder = tmp_path / "config" / "latency-tui" / "presets"
    folder.mkdir(parents=True)
    (folder / "everywhere.toml").write_text('[model]\nsource = "builtin:noop"\n'
                                            '[run]\ncopies = ["all", 2]\n')
    proc = cli("presets", env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "250"},
               timeout=30)
    assert proc.returncode == 0
    (row,) = [line for line in proc.stdout.splitlines() if "everywhere" in line]
    assert "all,2" in row and "-1" not in row
