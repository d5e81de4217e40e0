"""Reproducibility facts, replaying a session, and the cost per million inferences."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from latency_tui.core.errors import UserError
from latency_tui.core.measurement import ConfigResult, Throughput
from latency_tui.core.presets import parse_preset
from latency_tui.core.repro import (
    cost_per_million, differences, driver_versions, git_commit, instance_facts, model_facts,
    package_versions, preset_toml, reproducibility, with_cost,
)
from latency_tui.core.specs import ModelSpec, RunConfig
from latency_tui.tui.cli import main

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_versions_come_from_metadata_without_importing_torch():
    code = ("import sys\nfrom latency_tui.core import repro\n"
            "found = repro.package_versions()\n"
            "print(sorted(found), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "'numpy'" in out and "'latency-tui'" in out and out.rstrip().endswith("False")
    assert package_versions()["numpy"] == __import__("numpy").__version__


def test_drivers_and_the_instance_type_from_fake_files(tmp_path):
    for relative, text in (("sys/module/neuron/version", "2.19.64.0\n"),
                           ("proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 "
                            "Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"),
                           ("sys/devices/virtual/dmi/id/sys_vendor", "Amazon EC2\n"),
                           ("sys/devices/virtual/dmi/id/product_name", "inf2.xlarge\n")):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    assert driver_versions(str(tmp_path)) == {"neuron": "2.19.64.0", "nvidia": "535.104.05"}
    assert instance_facts(str(tmp_path))["instance_type"] == "inf2.xlarge"
    assert driver_versions(str(tmp_path / "none")) == {} == instance_facts(str(tmp_path / "none"))


def git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=repo, check=True, capture_output=True, timeout=30)


@needs_git
def test_the_git_commit_of_the_working_directory(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "model.py").write_text("x = 1\n")
    git(repo, "add", "model.py")
    git(repo, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    info = git_commit(repo)
    assert info["id"] == head and info["branch"] == "trunk" and info["dirty"] is False
    assert info["project"] == "project" and info["time"]
    (repo / "notes.txt").write_text("untracked\n")  # as pytest-benchmark: not dirty
    assert git_commit(repo)["dirty"] is False
    (repo / "model.py").write_text("x = 2\n")
    assert git_commit(repo)["dirty"] is True
    git(repo, "checkout", "-q", "--detach")
    assert git_commit(repo)["branch"] is None


def test_no_git_or_no_repository_is_no_failure(tmp_path, monkeypatch):
    assert git_commit(tmp_path, git=str(tmp_path / "no-such-git")) is None
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    if shutil.which("git"):
        assert git_commit(tmp_path) is None  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    plan = SimpleNamespace(model=ModelSpec("builtin:noop"))
    facts = reproducibility(plan, cwd=tmp_path)
    assert facts["git"] is None and facts["model"] == {"source": "builtin:noop"}
    assert facts["python"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_the_model_file_is_hashed(tmp_path):
    model = tmp_path / "model.py"
    model.write_bytes(b"def make():\n    return None\n")
    plan = SimpleNamespace(model=ModelSpec(f"{model}:make", postprocess=f"{model}:make"))
    facts = model_facts(plan)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert facts["sha256"] == digest and facts["file"] == str(model)
    assert facts["postprocess_sha256"] == digest


def test_differences_between_two_records():
    before = {"packages": {"torch": "2.1.0", "numpy": "1.26"}, "model": {"sha256": "a" * 64},
              "git": {"id": "1" * 40, "dirty": False}, "python": {"version": "3.11.7"}}
    after = {"packages": {"torch": "2.2.0", "numpy": "1.26", "transformers": "4.40"},
             "model": {"sha256": "b" * 64}, "git": {"id": "1" * 40, "dirty": True},
             "python": {"version": "3.11.7"}}
    assert differences(before, after) == [
        "torch 2.1.0 -> 2.2.0", "transformers absent -> 4.40",
        f"model file {'a' * 12} -> {'b' * 12}", "the working directory has uncommitted changes"]
    assert differences(after, after) == ["the working directory has uncommitted changes"]


def test_a_recorded_plan_reads_back_as_the_same_preset():
    recorded = {
        "name": 'quoted "name" \u00e9', "description": "line one\nline two",
        "model": {"source": "builtin:noop", "options": {"k": [1, 2], "nested": {"a": "b"}},
                  "preprocess": None, "postprocess": None},
        "inputs": {"tensors": [{"name": "x", "shape": [3, 4], "dtype": "int64", "low": 0,
                                "high": 9}], "texts": [], "max_length": 128,
                   "as_kwargs": True, "seed": 3},
        "run": {"device": "fake", "batch_sizes": [1, 4], "copies": [1, 2], "workers": [1],
                "copy_mode": "thread", "threads_per_copy": None, "duration_s": 0.5,
                "samples": None, "sample_cap": 1000, "timeout_s": None},
        "device": {"latency_ms": 0.5}, "warmup": {"min_iterations": 3, "max_s": 2.0},
        "search": {"kind": "batch", "max_batch": 64},
    }
    preset = parse_preset(preset_toml(recorded), name="x", path=None, origin="replay",
                          where="t")
    assert preset.name == recorded["name"] and preset.description == recorded["description"]
    assert preset.model.options == {"k": [1, 2], "nested": {"a": "b"}}
    assert preset.inputs.tensors[0].shape == (3, 4) and preset.inputs.as_kwargs
    assert preset.inputs.seed == 3
    assert preset.run.batch_sizes == (1, 4) and preset.run.copies == (1, 2)
    assert preset.stop.duration_s == 0.5 and preset.run.sample_cap == 1000
    assert preset.device_options == {"latency_ms": 0.5} and preset.warmup.max_s == 2.0
    assert preset.search.kind == "batch" and preset.search.max_batch == 64


def test_cost_per_million_inferences():
    assert cost_per_million(3.6, 1000.0) == pytest.approx(1.0)  # $0.001/s over 1000 samples/s
    assert cost_per_million(3.6, 0.0) is None
    result = ConfigResult(config=RunConfig(batch_size=4), status="finished",
                          throughput=Throughput(inferences_per_s=125.0, samples_per_s=500.0))
    costed = with_cost(result, 1.8)
    assert costed.details == {"price_per_hour_usd": 1.8, "cost_per_million_usd": pytest.approx(1.0)}
    assert with_cost(result, None) is result
    failed = ConfigResult(config=RunConfig(), status="failed")
    assert with_cost(failed, 1.8) is failed


def test_a_preset_may_give_the_hourly_price():
    preset = parse_preset('[model]\nsource = "builtin:noop"\n[run]\nprice_per_hour = 2.5\n',
                          name="p", path=None, origin="file", where="t")
    assert preset.run.price_per_hour == 2.5
    with pytest.raises(UserError, match="price_per_hour"):
        parse_preset('[model]\nsource = "builtin:noop"\n[run]\nprice_per_hour = -1\n',
                     name="p", path=None, origin="file", where="t")


# -- replay through the command line ---------------------------------------------------------------

def configs(path):
    return [r["config"] for r in json.loads(Path(path).read_text())["results"]]


def test_a_replay_runs_the_same_configurations_and_says_how_to_compare(
        tmp_path, write_preset, capsys):
    preset = write_preset("""
        name = "replayed"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2]
        copies = [1, 2]
        duration_s = 0.2
        price_per_hour = 3.6
        [device]
        latency_ms = 0.2
        [warmup]
        min_iterations = 3
        max_s = 1.0
    """)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert main(["run", "--preset", str(preset), "--json", str(first), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "--replay", str(first), "--duration", "0.1", "--json", str(second),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert configs(second) == configs(first) and len(configs(first)) == 4
    data = json.loads(second.read_text())
    original = json.loads(first.read_text())
    assert data["preset"]["run"]["duration_s"] == 0.1  # an override given with --replay
    assert data["preset"]["warmup"] == original["preset"]["warmup"]
    assert data["preset"]["device"] == {"latency_ms": 0.2}
    host = data["host"]
    assert host["replay_of"]["session"] == str(first) and host["replay_of"]["run"] == 1
    assert isinstance(host["replay_of"]["differences"], list)
    assert {"python", "packages", "model", "git", "instance", "drivers"} <= set(
        host["reproducibility"])
    assert "governors" in host["noise"] and "notes" in host["noise"]
    for result in data["results"]:  # the price came with the replay; every result is judged
        assert result["details"]["noise"]["verdict"] in ("quiet", "noisy")
        samples_per_s = result["throughput"]["samples_per_s"]
        assert result["details"]["cost_per_million_usd"] == pytest.approx(1e3 / samples_per_s)
    assert f"replay of {first}" in out and "cost: batch 1, 1 x 1: $" in out
    if (Path(__file__).parent.parent / "tui" / "compare.py").exists():
        assert f"latency-tui compare {first} {second}" in out


def test_flags_that_would_change_the_configurations_are_refused_with_replay(tmp_path, capsys):
    first = tmp_path / "first.json"
    assert main(["run", "--model", "builtin:noop", "--device", "fake", "--duration", "0.1",
                 "--json", str(first), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "--replay", str(first), "--batch-sizes", "4", "--quiet"]) == 2
    assert "--batch-sizes: not with --replay" in capsys.readouterr().err
    (tmp_path / "empty.json").write_text(json.dumps({
        "schema": "latency-tui/session", "schema_version": 2, "results": []}))
    assert main(["run", "--replay", str(tmp_path / "empty.json"), "--quiet"]) == 2
    assert "recorded no plan to replay" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "second.json")


def test_a_replay_with_compare_prints_the_comparison_and_exits_with_its_code(
        tmp_path, write_preset, capsys, monkeypatch):
    """``run --replay --compare``: the comparison's tables after the run's, and with
    ``--fail-on`` its exit code. The original is edited so that its plan runs twice as slow as
    it measured: the replay is a certain regression."""
    monkeypatch.chdir(tmp_path)
    preset = write_preset("""
        name = "replayed"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1]
        duration_s = 0.3
        [device]
        latency_ms = 0.2
        [warmup]
        min_iterations = 3
        max_s = 1.0
    """)
    assert main(["run", "--preset", str(preset), "--json", "first.json", "--quiet"]) == 0
    data = json.loads(Path("first.json").read_text())
    data["runs"][-1]["preset"]["device"]["latency_ms"] = 0.4
    Path("first.json").write_text(json.dumps(data))
    capsys.readouterr()
    replay = ["run", "--replay", "first.json", "--json", "second.json", "--quiet", "--compare",
              "--allow-noisy"]
    assert main([*replay, "--fail-on", "p50:+20%"]) == 1
    out = capsys.readouterr().out
    assert "second.json against the baseline first.json" in out and "slower" in out
    assert "FAIL --fail-on p50:+20%: p50 +" in out
    assert "latency-tui compare first.json" not in out  # compared already: no hint
    assert main([*replay, "--fail-on", "p50:+500%"]) == 0
    out = capsys.readouterr().out
    assert "slower" in out and "no --fail-on bound breached (p50:+500%)" in out
    assert main(replay[:-1]) == 0  # without bounds: printed, the run's exit code
    assert "second.json against the baseline first.json" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--compare"], "--compare: only with --replay"),
    (["--replay", "first.json", "--fail-on", "p99:+5%"], "--fail-on: only with --replay"),
    (["--replay", "first.json", "--allow-noisy"], "--allow-noisy: only with --replay"),
    (["--replay", "first.json", "--compare", "--fail-on", "p99:5"], "must be METRIC:+PCT%"),
])
def test_compare_flags_of_run_are_checked_before_anything_runs(tmp_path, capsys, monkeypatch,
                                                                args, message):
    monkeypatch.chdir(tmp_path)
    Path("first.json").write_text("{}")
    assert main(["run", "--json", "second.json", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not Path("second.json").exists()


def test_the_engine_gathers_the_facts_and_the_recorder_runs_no_process(monkeypatch):
    """The TUI feeds its recorder on the UI thread: git (a subprocess, up to 2 s a call) and
    the model's hashing belong on the engine's thread. CI saw the app freeze past a 10 s wait
    when the recorder forked git three times at ``RunStarted``."""
    from helpers import fake_plan
    from latency_tui.core.engine import Engine
    from latency_tui.core.events import RunStarted
    from latency_tui.core.recorder import SessionRecorder

    events = []
    Engine(fake_plan(duration_s=0.05, latency_ms=0.1), events.append).run()
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    assert {"python", "packages", "model", "git"} <= set(started.host["reproducibility"])
    assert "governors" in started.host["noise"]

    def no_process(*args, **kwargs):
        raise AssertionError(f"the recorder started a process: {args}")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    recorder = SessionRecorder(replay_of={"session": "a.json", "run": 1,
                                          "reproducibility": {"python": {"version": "3.0.0"}}})
    recorder(started)
    host = recorder.session.host
    assert host["reproducibility"] == started.host["reproducibility"]
    assert any(line.startswith("python 3.0.0 ->") for line in host["replay_of"]["differences"])
