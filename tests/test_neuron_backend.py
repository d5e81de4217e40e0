"""The Neuron backend end to end on a machine without Neuron: stand-in torch_neuron and
torch_neuronx packages (tests/standins: trace delegates to torch.jit.trace and records what it
was given and the NeuronCores its process saw), fake neuron-ls and neuron-monitor executables
replaying real output, and the real engine, plan and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from latency_tui.core.api import Overrides, build_plan, load_preset
from latency_tui.core.engine import Engine
from latency_tui.core.errors import UserError
from latency_tui.core.monitors import default_monitors
from latency_tui.core.presets import parse_preset

TESTS = Path(__file__).parent
STANDINS = TESTS / "standins"
MONITOR_REPORT = (TESTS / "fixtures" / "neuron" / "neuron-monitor-inf1.xlarge-4procs.jsonl")

pytestmark = pytest.mark.slow


def executable(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)


def neuron_ls_json(cores: int, held: bool) -> str:
    processes = [{"pid": 4242, "command": "python serve.py", "neuron_runtime_version": "2.0"}]
    return json.dumps([{"neuron_device": 0, "nc_count": cores, "memory_size": 8 * 2**30,
                        "neuroncore_ids": list(range(cores)),
                        "neuron_processes": processes if held else []}])


@pytest.fixture
def neuron_host(tmp_path, monkeypatch):
    """A host with 4 NeuronCores as far as latency-tui can tell; returns a reader of what the
    stand-in packages recorded."""
    bin_dir, log = tmp_path / "bin", tmp_path / "standin-log"
    bin_dir.mkdir()
    log.mkdir()

    def configure(cores: int = 4, held: bool = False) -> None:
        executable(bin_dir, "neuron-ls", f"print({neuron_ls_json(cores, held)!r})\n")

    configure()
    executable(bin_dir, "neuron-monitor", f"""
        import sys, time
        line = open({str(MONITOR_REPORT)!r}).read().strip()
        while True:
            print(line, flush=True)
            time.sleep(0.2)
    """)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LATENCY_TUI_STANDIN_LOG", str(log))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.syspath_prepend(str(STANDINS))

    def records(package: str = "torch_neuron"):
        path = log / f"{package}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    records.configure = configure
    records.data = tmp_path / "data"
    return records


def neuron_plan(**run):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in run.items())
    text = textwrap.dedent(f"""
        [model]
        source = "builtin:mlp"
        [run]
        device = "neuron"
        duration_s = 0.4
        {lines}
        [device]
        api = "torch-neuron"
        compiler_args = ["--neuroncore-pipeline-cores", "1"]
        [warmup]
        min_iterations = 3
        max_iterations = 30
        window = 5
    """)
    for key in ("pipeline_size",):
        if key in run:
            raise ValueError(key)
    return build_plan(parse_preset(text, name="neuron-test", path=None, origin="file",
                                   where="test"))


def test_compiled_once_per_batch_size_cached_and_one_copy_per_core(neuron_host):
    plan = neuron_plan(batch_sizes=[1, 4], copies=[1, 2], workers=[1, 2])
    results = Engine(plan, lambda e: None).run()
    assert [r.status for r in results] == ["finished"] * 8, [r.error for r in results]
    traces = [r for r in neuron_host() if r["event"] == "trace"]
    assert sorted(t["shapes"][0][0] for t in traces) == [1, 4]  # once per batch size
    assert all(t["compiler_args"] == ["--neuroncore-pipeline-cores", "1"] for t in traces)
    assert all(t["visible_cores"] is None for t in traces)  # compiling takes no core
    seen = {r["visible_cores"] for r in neuron_host() if r["event"] == "import"
            and r["visible_cores"] is not None}
    assert seen == {"0", "1"}
    (index,) = list((neuron_host.data / "latency-tui" / "cache" / "neuron").glob(
        "*/model_index.json"))
    configs = json.loads(index.read_text())["model_configs"]
    assert sorted(c["batch_size"] for c in configs) == [1, 4]
    assert all(c["status"] == "ok" and c["compile_s"] >= 0 and c["input_shapes"] for c in configs)
    # The NeuronCore monitor's readings and the runtime's own latency reached the results.
    # (Each configuration lasts 0.4 s and the monitors are read once a second: not every
    # configuration catches a fresh report, and a loaded machine starts the fake tool late.)
    assert any("nc0" in r.utilisation for r in results)
    assert any("runtime_latency_ms" in r.details for r in results)
    again = Engine(plan, lambda e: None).run()
    assert all(r.status == "finished" for r in again)
    assert len([r for r in neuron_host() if r["event"] == "trace"]) == 2  # the cache answered


def test_a_pipeline_of_two_cores_per_copy(neuron_host):
    text = textwrap.dedent("""
        [model]
        source = "builtin:mlp"
        [run]
        device = "neuron"
        copies = [2]
        duration_s = 0.3
        [device]
        api = "torch-neuron"
        pipeline_size = 2
        [warmup]
        min_iterations = 3
        max_iterations = 20
        window = 5
    """)
    plan = build_plan(parse_preset(text, name="p", path=None, origin="file", where="test"))
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "finished", result.error
    seen = {r["visible_cores"] for r in neuron_host() if r["event"] == "import"
            and r["visible_cores"]}
    assert seen == {"0-1", "2-3"}


def test_copies_all_is_one_per_core_and_more_than_the_free_cores_are_refused(neuron_host):
    plan = build_plan(load_preset("neuron-mlp"))
    assert sorted({c.copies for c in plan.configs}) == [1, 4]
    assert {c.copy_mode for c in plan.configs} == {"process"}
    with pytest.raises(UserError, match="need 5 NeuronCores; this host has 4"):
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(5,)))
    neuron_host.configure(cores=4, held=True)
    with pytest.raises(UserError, match=r"held by python serve.py \(pid 4242\)"):
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(1,)))


def test_a_failed_compile_fails_that_configuration_only(neuron_host, monkeypatch):
    monkeypatch.setenv("LATENCY_TUI_STANDIN_FAIL_TRACE", "1")
    (result,) = Engine(neuron_plan(), lambda e: None).run()
    assert result.status == "failed" and result.error_kind == "compile"
    assert "neuron-cc failed" in result.error


def test_a_precompiled_model_and_a_neuronperf_index_are_loaded_as_they_are(neuron_host,
                                                                          tmp_path):
    import torch

    model = torch.nn.Linear(4, 2).eval()
    traced = torch.jit.trace(model, (torch.zeros(1, 4),))
    torch.jit.save(traced, str(tmp_path / "model_b1.pt"))
    (tmp_path / "index.json").write_text(json.dumps({"model_name": "linear", "model_configs": [
        {"filename": "model_b1.pt", "batch_size": 1, "pipeline_size": 1, "compile_s": 3.1,
         "status": "ok"}]}))
    for source in (str(tmp_path / "model_b1.pt"), str(tmp_path / "index.json")):
        text = textwrap.dedent(f"""
            [model]
            source = {json.dumps(source)}
            [[inputs.tensors]]
            shape = [4]
            [run]
            device = "neuron"
            duration_s = 0.3
            [device]
            api = "torch-neuron"
            [warmup]
            min_iterations = 3
            max_iterations = 20
            window = 5
        """)
        plan = build_plan(parse_preset(text, name="pre", path=None, origin="file", where="t"))
        (result,) = Engine(plan, lambda e: None).run()
        assert result.status == "finished", (source, result.error)
    assert not [r for r in neuron_host() if r["event"] == "trace"]  # nothing recompiled


def test_the_neuroncore_monitor_is_the_default_for_neuron(neuron_host):
    names = [m.name for m in default_monitors("neuron")]
    assert names[-1] == "neuroncore"


def test_without_the_tools_the_monitor_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    (reading,) = default_monitors("neuron")[-1].poll()
    assert reading.percent is None and "neuron-monitor not found" in reading.note


def test_without_a_neuron_package_the_cli_says_where_it_comes_from(tmp_path):
    script = Path(sys.executable).with_name("latency-tui")
    proc = subprocess.run([str(script), "run", "--preset", "cpu-mlp", "--device", "neuron",
                           "--json", str(tmp_path / "s.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "pip.repos.neuron.amazonaws.com" in proc.stderr and "torch-neuron" in proc.stderr
    assert not (tmp_path / "s.json").exists()


def test_with_a_package_but_no_device_the_cli_says_so(neuron_host, tmp_path, monkeypatch):
    bin_dir = tmp_path / "nodevice"
    bin_dir.mkdir()
    executable(bin_dir, "neuron-ls", """
        import sys
        print("FATA[0000] Failed to discover neuron devices", file=sys.stderr)
        sys.exit(1)
    """)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env = {**os.environ, "PYTHONPATH": str(STANDINS)}
    script = Path(sys.executable).with_name("latency-tui")
    proc = subprocess.run([str(script), "run", "--preset", "cpu-mlp", "--device", "neuron",
                           "--json", str(tmp_path / "s.json")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 2 and "no Neuron device" in proc.stderr
