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
from latency_tui.core.backends import neuron as neuron_backend
from latency_tui.core.backends.neuron import NeuronBackend, instance_type, package_for
from latency_tui.core.engine import Engine
from latency_tui.core.errors import UserError
from latency_tui.core.monitors import default_monitors
from latency_tui.core.neuron.tools import MonitorReport
from latency_tui.core.presets import parse_preset
from latency_tui.core.source import ModelSource

TESTS = Path(__file__).parent
STANDINS = TESTS / "standins"
MONITOR_REPORT = (TESTS / "fixtures" / "neuron" / "neuron-monitor-inf1.xlarge-4procs.jsonl")

pytestmark = pytest.mark.slow


def executable(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)


def neuron_ls_json(cores: int, held, devices: int = 1) -> str:
    """``devices`` devices of ``cores // devices`` cores; ``held``: True (all of them), or the
    indices of the devices a process (python serve.py, pid 4242) holds."""
    processes = [{"pid": 4242, "command": "python serve.py", "neuron_runtime_version": "2.0"}]
    each = cores // devices
    held = set(range(devices)) if held is True else set(held or ())
    return json.dumps([{"neuron_device": d, "nc_count": each, "memory_size": 8 * 2**30,
                        "neuroncore_ids": list(range(d * each, (d + 1) * each)),
                        "neuron_processes": processes if d in held else []}
                       for d in range(devices)])


@pytest.fixture
def neuron_host(tmp_path, monkeypatch):
    """A host with 4 NeuronCores as far as latency-tui can tell; returns a reader of what the
    stand-in packages recorded."""
    bin_dir, log = tmp_path / "bin", tmp_path / "standin-log"
    bin_dir.mkdir()
    log.mkdir()

    def configure(cores: int = 4, held=False, devices: int = 1) -> None:
        executable(bin_dir, "neuron-ls", f"print({neuron_ls_json(cores, held, devices)!r})\n")

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


def neuron_plan(api="torch-neuron", compiler_args=("--neuroncore-pipeline-cores", "1"),
                source="builtin:mlp", shape=None, **run):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in run.items())
    inputs = f"[[inputs.tensors]]\nshape = {json.dumps(shape)}" if shape else ""
    text = textwrap.dedent(f"""
        [model]
        source = {json.dumps(source)}
        {inputs}
        [run]
        device = "neuron"
        duration_s = 0.4
        {lines}
        [device]
        api = {json.dumps(api)}
        compiler_args = {json.dumps(list(compiler_args))}
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
    # The runtimes' own figures (neuron-monitor's inf1 capture) reach the summary and details.
    assert any(r.utilisation.get("nc", {}).get("executions", {}).get("max") == 187 for r in results)
    assert any(r.details.get("instance_type") == "inf1.xlarge" for r in results)
    again = Engine(plan, lambda e: None).run()
    assert all(r.status == "finished" for r in again)
    assert len([r for r in neuron_host() if r["event"] == "trace"]) == 2  # the cache answered


def two_copies(device_line: str) -> str:
    """A preset of two copies of the MLP on torch-neuron, with one more ``[device]`` line."""
    return textwrap.dedent(f"""
        [model]
        source = "builtin:mlp"
        [run]
        device = "neuron"
        copies = [2]
        duration_s = 0.3
        [device]
        api = "torch-neuron"
        {device_line}
        [warmup]
        min_iterations = 3
        max_iterations = 20
        window = 5
    """)


def cores_seen(neuron_host, text: str) -> set:
    """Run the preset ``text``; the NeuronCores each copy's process was given."""
    plan = build_plan(parse_preset(text, name="p", path=None, origin="file", where="test"))
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "finished", result.error
    return {r["visible_cores"] for r in neuron_host() if r["event"] == "import"
            and r["visible_cores"]}


def test_a_pipeline_of_two_cores_per_copy(neuron_host):
    assert cores_seen(neuron_host, two_copies("pipeline_size = 2")) == {"0-1", "2-3"}


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


def test_a_held_core_the_copies_would_take_is_refused_naming_its_holder_and_the_free_ones(
        neuron_host):
    neuron_host.configure(cores=4, devices=2, held=[0])  # cores 0-1 held, 2-3 free
    with pytest.raises(UserError) as caught:
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(1,)))
    assert str(caught.value) == (
        "--copies 1: 1 copies x 1 cores need 1 NeuronCores (0: copies are placed from core 0), "
        "and 0 is held by python serve.py (pid 4242); free cores: 2-3 (first_core = 2 in the "
        "preset's [device] fits)")
    neuron_host.configure(cores=4, devices=2, held=[1])  # cores 2-3 held: two copies fit
    plan = build_plan(load_preset("neuron-mlp"), Overrides(copies=(2,)))
    assert {c.copies for c in plan.configs} == {2}
    with pytest.raises(UserError, match=r"--copies 3: .*\(0-2: copies are placed from core 0\), "
                                        r"and 2 is held by python serve\.py \(pid 4242\); "
                                        r"free cores: 0-1$"):  # 3 cores fit nowhere
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(3,)))
    with pytest.raises(UserError, match=r"need 5 NeuronCores; this host has 4, 2-3 held by "
                                        r"python serve\.py \(pid 4242\) \(free: 0-1\)"):
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(5,)))


def test_copies_all_without_a_neuron_package_the_cli_gives_the_reason(tmp_path):
    script = Path(sys.executable).with_name("latency-tui")
    proc = subprocess.run([str(script), "run", "--preset", "neuron-mlp", "--json",
                           str(tmp_path / "s.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no Neuron package is installed" in proc.stderr
    assert "pip.repos.neuron.amazonaws.com" in proc.stderr and "cannot say" not in proc.stderr


def test_the_torch_neuronx_trace_path_end_to_end(neuron_host):
    plan = neuron_plan(api="torch-neuronx", compiler_args=["--target", "inf2"], copies=[2])
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "finished", result.error
    records = neuron_host("torch_neuronx")
    (trace,) = [r for r in records if r["event"] == "trace"]
    assert trace["compiler_args"] == ["--target", "inf2"] and trace["visible_cores"] is None
    assert {r["visible_cores"] for r in records if r["event"] == "import"
            and r["visible_cores"]} == {"0", "1"}
    assert neuron_host("torch_neuron") == []  # the inf1 package played no part
    assert result.details["device"]["api"] == "torch-neuronx"
    (index,) = (neuron_host.data / "latency-tui" / "cache" / "neuron").glob("*/model_index.json")
    (entry,) = json.loads(index.read_text())["model_configs"]
    assert entry["tool_versions"] == {"api": "torch-neuronx", "package": "2.9.0.2.0+standin"}
    assert entry["compiler_args"] == ["--target", "inf2"]


def test_the_compile_cache_is_keyed_by_the_package_version_and_the_compiler_args(
        neuron_host, tmp_path, monkeypatch):
    def compile_once(compiler_args=("-O1",)):
        plan = neuron_plan(compiler_args=compiler_args)
        backend = NeuronBackend(plan.configs[0].device_options)
        return backend.compile(ModelSource(plan.model, plan.inputs), 1)

    def traces():
        return len([r for r in neuron_host() if r["event"] == "trace"])

    first = compile_once()
    assert (traces(), first.cached) == (1, False)
    assert compile_once().cached and traces() == 1  # the same: the cache answers
    newer = tmp_path / "newer"  # torch-neuron upgraded: its metadata says another version
    (newer / "torch_neuron-1.13.1.3.0.dist-info").mkdir(parents=True)
    (newer / "torch_neuron-1.13.1.3.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: torch-neuron\nVersion: 1.13.1.3.0\n")
    monkeypatch.syspath_prepend(str(newer))
    assert neuron_backend.package_version("torch-neuron") == "1.13.1.3.0"
    upgraded = compile_once()
    assert (traces(), upgraded.cached) == (2, False) and upgraded.key != first.key
    other = compile_once(("-O2",))
    assert (traces(), other.cached) == (3, False) and other.key != upgraded.key


def test_a_core_taken_between_planning_and_loading_names_its_holder(neuron_host, monkeypatch):
    plan = neuron_plan(copies=[1])  # planned while the cores were free
    neuron_host.configure(cores=4, held=True)
    monkeypatch.setenv("LATENCY_TUI_STANDIN_LOAD_ERROR",
                       "nrt_load: failed to allocate NeuronCore(s): NERR_RESOURCE_NC (stand-in)")
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "failed"
    assert ("NeuronCore 0 of this copy is already in use by another process (neuron-ls lists "
            "python serve.py (pid 4242) on its device): RuntimeError: nrt_load: failed to "
            "allocate NeuronCore(s): NERR_RESOURCE_NC (stand-in)") in result.error


MODEL_WITH_A_NEURON_OP = """
import sys, torch
import torch_neuron  # registers neuron::forward_1, as the real package registers its ops

if torch_neuron._LIBRARY is None:
    sys.exit(77)  # this torch cannot register an op from Python

class Compiled(torch.nn.Module):
    def forward(self, x):
        return torch.ops.neuron.forward_1(x)

torch.jit.save(torch.jit.script(Compiled()), sys.argv[1])
"""


def test_a_compiled_model_loads_only_after_the_package_that_compiled_it(neuron_host, tmp_path):
    path, maker = tmp_path / "compiled.pt", tmp_path / "make_model.py"
    maker.write_text(MODEL_WITH_A_NEURON_OP)  # a file: torch.jit.script reads the source
    # Made in a process of its own: the stand-in's import (and its ops) stay there.
    made = subprocess.run([sys.executable, str(maker), str(path)], timeout=120,
                          env={**os.environ, "PYTHONPATH": str(STANDINS)})
    if made.returncode == 77:
        pytest.skip("this torch has no torch.library to register the stand-in's op with")
    assert made.returncode == 0
    (loaded,) = Engine(neuron_plan(api="torch-neuron", source=str(path), shape=[4]),
                       lambda e: None).run()
    assert loaded.status == "finished", loaded.error
    (failed,) = Engine(neuron_plan(api="torch-neuronx", source=str(path), shape=[4]),
                       lambda e: None).run()
    assert failed.status == "failed"
    assert "Unknown builtin op: neuron::forward_1" in failed.error
    assert ("the package that compiled it must be imported before torch.jit.load: "
            "api = 'torch-neuronx' imported torch_neuronx") in failed.error


@pytest.mark.parametrize("dmi, report, expected", [
    ("inf1.6xlarge\n", None, "inf1.6xlarge"),
    ("inf1.6xlarge", MonitorReport(instance_type="trn1.2xlarge"), "inf1.6xlarge"),  # DMI first
    ("HVM domU", MonitorReport(instance_type="trn1.2xlarge"), "trn1.2xlarge"),
    (None, MonitorReport(instance_type="inf2.xlarge"), "inf2.xlarge"),  # no DMI data at all
    ("m5.large", MonitorReport(), None),
    (None, None, None),
])
def test_instance_type_from_dmi_else_the_monitor_and_never_the_network(dmi, report, expected,
                                                                       tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError(f"instance_type() went to the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    path = tmp_path / "product_name"
    if dmi is not None:
        path.write_text(dmi)
    monkeypatch.setattr(neuron_backend, "DMI_PRODUCT_NAME", str(path))
    assert instance_type(report) == expected


@pytest.mark.parametrize("instance, package", [
    ("inf1.xlarge", "torch-neuron (with torch 1.13.1 on Python 3.9 or 3.10)"),
    ("inf2.48xlarge", "torch-neuronx"),
    ("trn1.32xlarge", "torch-neuronx"),
    ("trn2.48xlarge", "torch-neuronx 2.13 or later (the native neuron device)"),
    (None, "torch-neuron on inf1, torch-neuronx on inf2 / trn1 / trn2"),
])
def test_package_for_each_instance_family(instance, package):
    assert package_for(instance) == package


def test_without_a_package_the_reason_names_the_one_this_instance_needs(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("torch_neuron") or importlib.util.find_spec("torch_neuronx"):
        pytest.skip("a Neuron package is installed here")
    (tmp_path / "product_name").write_text("inf1.2xlarge\n")
    monkeypatch.setattr(neuron_backend, "DMI_PRODUCT_NAME", str(tmp_path / "product_name"))
    reason = NeuronBackend.unavailable({}, "neuron")
    assert reason.startswith("no Neuron package is installed: ") and reason.endswith(
        "pip.repos.neuron.amazonaws.com torch-neuron (with torch 1.13.1 on Python 3.9 or 3.10)")


def test_first_core_places_the_copies_past_cores_another_process_holds(neuron_host):
    """Copies were always placed from core 0: with another process on cores 0-1 of a 4-core
    host there was no way to run on the free 2-3."""
    neuron_host.configure(cores=4, devices=2, held=[0])  # cores 0-1 held, 2-3 free
    with pytest.raises(UserError, match=r"free cores: 2-3 \(first_core = 2 in the preset's "
                                        r"\[device\] fits\)$"):
        build_plan(load_preset("neuron-mlp"), Overrides(copies=(2,)))
    text = two_copies("first_core = 2")
    assert cores_seen(neuron_host, text) == {"2", "3"}
    assert NeuronBackend.units({"first_core": 2}, "neuron") == 2
    with pytest.raises(UserError, match=r"from first_core 3 \(3-4\); this host has 4 \(0-3\)"):
        build_plan(parse_preset(text.replace("first_core = 2", "first_core = 3"), name="p",
                                path=None, origin="file", where="test"))


def test_first_core_places_copies_and_does_not_change_what_is_compiled():
    """A Neuron compile takes minutes: placing the copies elsewhere must reuse it."""
    source = ModelSource(load_preset("neuron-mlp").model, load_preset("neuron-mlp").inputs)
    placed = NeuronBackend({"api": "torch-neuron", "first_core": 2}).cache_key(source, 1)
    assert placed == NeuronBackend({"api": "torch-neuron"}).cache_key(source, 1)
    assert placed != NeuronBackend({"api": "torch-neuron", "pipeline_size": 2}).cache_key(source, 1)
