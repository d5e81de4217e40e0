"""benchmarks/gpu_check.py on the CPU: what it makes of real pytest output, its time-out, where
its report goes, and the out-of-memory check's sweep.

The GPU checks themselves cannot run here; what can go wrong around them can, and costs a GPU
host's whole run when it does (a report without verdicts, output lost to a failed write, an
all-skipped run that reads as a pass).
"""

from __future__ import annotations

import io
import os
import runpy
import sys
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check

MODELS = Path(__file__).parent / "cuda" / "gpu_models.py"

DEMO = '''
import json
import pytest

pytestmark = pytest.mark.cuda


def report(name, **figures):  # as tests/cuda/test_gpu.py prints them
    print(f"\\nGPU-CHECK {name}: {json.dumps(figures)}", flush=True)


def test_passes():
    report("passes", p50_ms=1.0)


def test_fails():
    report("fails", p50_ms=2.0)
    assert 1 == 2, "the device p50 is off"


@pytest.mark.skipif(True, reason="needs an NVIDIA GPU")
def test_skipped():
    pass


@pytest.mark.parametrize("preset", ["cuda-mlp", "cuda-bert"])
def test_param(preset):
    report(f"param, {preset}", preset=preset)


@pytest.fixture
def broken():
    raise RuntimeError("no device")


def test_setup_error(broken):
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

'''


@pytest.fixture
def demo_run(tmp_path):
    """pytest, run as the script runs it, on a small generated test file whose ini has an
    ``asyncio_mode`` key pytest-asyncio is not there to claim (as the project's pyproject)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\nmarkers =\n"
                                         "    cuda: needs a GPU\n", encoding="utf-8")
    demo = tmp_path / "test_demo.py"
    demo.write_text(DEMO, encoding="utf-8")
    junit = tmp_path / "junit.xml"
    echo = io.StringIO()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    output, code, timed_out = gpu_check.run_streaming(
        gpu_check.pytest_command(demo, junit, rootdir=tmp_path), cwd=tmp_path, env=env,
        limit_s=120, echo=echo)
    return output, code, timed_out, junit, echo.getvalue()


def test_the_report_keeps_every_verdict_and_figure_of_real_pytest_output(demo_run):
    output, code, timed_out, junit, echoed = demo_run
    assert not timed_out and code == 1
    assert echoed == output  # streamed to the terminal as it came, and kept
    assert "PytestConfigWarning" not in output and "asyncio_mode" not in output
    verdicts = gpu_check.read_junit(junit)
    by_name = {name: (verdict, why) for verdict, name, _, why in verdicts}
    assert by_name["test_passes"] == ("PASSED", "")
    assert by_name["test_fails"][0] == "FAILED"
    assert "the device p50 is off" in by_name["test_fails"][1]
    assert by_name["test_skipped"] == ("SKIPPED", "needs an NVIDIA GPU")
    assert by_name["test_param[cuda-mlp]"] == ("PASSED", "")
    assert by_name["test_param[cuda-bert]"] == ("PASSED", "")
    assert by_name["test_setup_error"][0] == "ERROR"
    assert by_name["test_xfail"] == ("XFAIL", "known")
    figures = gpu_check.figure_lines(output)
    assert figures == ['GPU-CHECK passes: {"p50_ms": 1.0}', 'GPU-CHECK fails: {"p50_ms": 2.0}',
                       'GPU-CHECK param, cuda-mlp: {"preset": "cuda-mlp"}',
                       'GPU-CHECK param, cuda-bert: {"preset": "cuda-bert"}']
    report = gpu_check.build_report("- host", verdicts, figures, code, timed_out, output, 0.1)
    for name in by_name:
        assert name in report
    for line in figures:
        assert line in report
    assert "needs an NVIDIA GPU" in report and "NO CHECK RAN" not in report
    # -rA's short summary, in the terminal output, says the same
    assert "PASSED test_demo.py::test_passes" in output
    assert "SKIPPED [1] test_demo.py" in output and "needs an NVIDIA GPU" in output


def test_an_all_skipped_run_is_loud_and_not_a_pass():
    verdicts = [("SKIPPED", "test_a", 0.0, "needs an NVIDIA GPU"),
                ("SKIPPED", "test_b", 0.0, "needs an NVIDIA GPU")]
    assert gpu_check.nothing_ran(verdicts)
    assert gpu_check.nothing_ran([])
    assert not gpu_check.nothing_ran(None)  # did not finish: the time-out says so instead
    assert not gpu_check.nothing_ran([("FAILED", "test_a", 1.0, "x")] + verdicts)
    # Checks that all errored (a shared fixture failing on the GPU) did run: pytest's status.
    assert not gpu_check.nothing_ran([("ERROR", "test_a", 1.0, "x"), ("ERROR", "test_b", 1.0, "y")])
    report = gpu_check.build_report("- host", verdicts, [], 0, False, "", 0.0)
    assert "NO CHECK RAN ON A GPU" in report and "needs an NVIDIA GPU" in report


def test_read_junit_without_a_file_is_none(tmp_path):
    assert gpu_check.read_junit(tmp_path / "absent.xml") is None
    (tmp_path / "cut.xml").write_text("<testsuites><testsuite><testcase", encoding="utf-8")
    assert gpu_check.read_junit(tmp_path / "cut.xml") is None


GRANDPARENT = '''
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
print("started \\u2713", flush=True)
sys.stdout.write("no newline yet")
sys.stdout.flush()
time.sleep(60)
'''


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            return not any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_time_out_keeps_the_output_as_text_and_kills_the_subprocesses(tmp_path):
    pid_file = tmp_path / "child.pid"
    echo = io.StringIO()
    started = time.monotonic()
    output, code, timed_out = gpu_check.run_streaming(
        [sys.executable, "-c", GRANDPARENT, str(pid_file)], cwd=tmp_path, env=dict(os.environ),
        limit_s=3, echo=echo)
    assert time.monotonic() - started < 30
    assert timed_out and code == 124
    assert isinstance(output, str)
    assert output.startswith("started \u2713\nno newline yet\nTIMED OUT after 3 s")
    assert "TIMED OUT after 3 s" in echo.getvalue()
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the check's own subprocess outlived the time-out"
    report = gpu_check.build_report("- host", None, [], code, timed_out, output, 0.05)
    assert "timed out" in report and "no newline yet" in report


def test_the_report_is_printed_before_it_is_written_and_a_failed_write_loses_nothing(
        tmp_path, capsys):
    target = tmp_path / "report.md"
    assert gpu_check.publish("## the report", target)
    assert target.read_text(encoding="utf-8") == "## the report"
    assert "## the report" in capsys.readouterr().out
    assert not gpu_check.publish("## again", tmp_path)  # a directory: the write fails
    out, err = capsys.readouterr()
    assert "## again" in out
    assert err.count("\n") == 1 and "could not write the report" in err


def test_the_environment_adds_no_empty_import_path_entry(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    paths = gpu_check.pytest_env(tmp_path)["PYTHONPATH"].split(os.pathsep)
    assert paths == [str(tmp_path), str(gpu_check.REPO / "tests")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/x", "", "/y"]))
    paths = gpu_check.pytest_env(tmp_path)["PYTHONPATH"].split(os.pathsep)
    assert paths[2:] == ["/x", "/y"] and "" not in paths


def test_the_temporary_package_is_a_regular_package_of_this_checkout(tmp_path):
    gpu_check.package_root(tmp_path)
    package = tmp_path / "latency_tui"
    assert (package / "__init__.py").resolve() == gpu_check.REPO / "__init__.py"
    for name in ("core", "tui", "presets"):
        assert (package / name).resolve() == gpu_check.REPO / name
    # The checkout's __init__.py imports only what the package holds, and nothing heavy.
    code = ("import sys, latency_tui; print(latency_tui.__file__); "
            "print('torch' in sys.modules, 'textual' in sys.modules)")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == [str(package / "__init__.py"), "False False"]


@pytest.mark.slow
def test_the_script_without_a_gpu_says_nothing_ran_and_exits_non_zero(tmp_path, capsys):
    """The whole script, on this CPU: every check skips, the report says why and says loudly
    that nothing was validated, the exit status is not 0, and the temporary package is gone."""
    before = set(Path(gpu_check.tempfile.gettempdir()).glob("latency-tui-gpu-*"))
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the checks would run")
    code = gpu_check.main(["--report", str(tmp_path / "r.md")])
    out, err = capsys.readouterr()
    assert code == gpu_check.NOTHING_RAN
    assert "NO CHECK RAN ON A GPU" in err
    report = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert report in out
    assert "NO CHECK RAN ON A GPU" in report
    assert report.count("SKIPPED") == 8 and report.count("needs an NVIDIA GPU") == 8
    assert "torch.cuda.is_available() = False" in report
    assert "test_the_cuda_bert_preset_runs_end_to_end" in out  # pytest's own output streamed
    assert set(Path(gpu_check.tempfile.gettempdir()).glob("latency-tui-gpu-*")) == before


def test_the_out_of_memory_sweep_plans_three_configurations_in_order():
    from helpers import fake_plan

    models = runpy.run_path(str(MODELS))
    sweep, hog = models["OOM_SWEEP"], models["HOG_BATCH"]
    assert sweep[1] == hog and sweep[0] < hog and sweep[2] < hog
    plan = fake_plan(model="builtin:noop", device_name="cpu", batch_sizes=sweep)
    assert [c.batch_size for c in plan.configs] == list(sweep)
    # Why not (1, hog, 1): the preset parser drops the repeated size.
    plan = fake_plan(model="builtin:noop", device_name="cpu", batch_sizes=(1, hog, 1))
    assert [c.batch_size for c in plan.configs] == [1, hog]


def test_the_checks_print_their_figures_on_a_line_of_their_own(capsys):
    pytest.importorskip("torch")
    checks = runpy.run_path(str(Path(__file__).parent / "cuda" / "test_gpu.py"))
    print("tests/cuda/test_gpu.py::test_x ", end="")  # as pytest -v prints the test id
    checks["report"]("x", p50_ms=1.5)
    print("PASSED")
    assert gpu_check.figure_lines(capsys.readouterr().out) == ['GPU-CHECK x: {"p50_ms": 1.5}']
