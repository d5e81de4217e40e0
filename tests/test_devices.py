"""``latency-tui devices``: every backend on the host, and why each absent one is absent, from
NVML (a scripted pynvml here), neuron-ls (a fake executable replaying real output) and the
importable packages (stand-in torch_neuron)."""

from __future__ import annotations

import json
import sys

import pytest
from fake_nvml import FakeGpu, FakeNvml
from test_neuron_backend import neuron_host  # noqa: F401  (the fixture)

from latency_tui.tui.cli import main


def devices(capsys, *args):
    assert main(["devices", *args]) == 0
    return capsys.readouterr().out


def by_kind(capsys):
    return {entry["kind"]: entry for entry in json.loads(devices(capsys, "--json"))}


@pytest.fixture
def no_accelerators(monkeypatch, tmp_path):
    """No NVML binding, no Neuron package, no Neuron tools, whatever this host has."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (
        "torch_neuron", "torch_neuronx") else real(name, *a))


def test_the_cpu_is_always_there_and_each_absent_backend_says_why(capsys, no_accelerators):
    entries = by_kind(capsys)
    assert list(entries) == ["cpu", "cuda", "neuron"]
    cpu = entries["cpu"]
    assert cpu["available"] and cpu["devices"][0]["usable_cpus"] >= 1
    import torch

    if torch.version.cuda is None:
        assert not entries["cuda"]["available"]
        assert "CPU-only build" in entries["cuda"]["reason"]
    assert "nvidia-ml-py is not installed" in entries["cuda"]["monitor"]
    neuron = entries["neuron"]
    assert not neuron["available"] and neuron["api"] is None
    assert "AWS's own repository" in neuron["reason"] and "torch-neuron" in neuron["reason"]


def test_the_table_says_the_same_in_rows(capsys, no_accelerators):
    out = devices(capsys)
    for word in ("cpu", "cuda", "neuron", "yes", "no", "AWS"):
        assert word in out


def test_gpus_are_listed_from_nvml_with_name_memory_driver_and_capability(capsys, monkeypatch,
                                                                        no_accelerators):
    fake = FakeNvml([FakeGpu(name="NVIDIA H200", memory_total=141_000_000_000,
                             capability=(9, 0)), FakeGpu(name="NVIDIA L4", uuid="GPU-1",
                                                         capability=(8, 9))],
                    driver="570.86.15", cuda=12080)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus = by_kind(capsys)["cuda"]["devices"]
    assert [(g["index"], g["name"], g["compute_capability"]) for g in gpus] == [
        (0, "NVIDIA H200", "9.0"), (1, "NVIDIA L4", "8.9")]
    assert gpus[0]["memory_total_mb"] == 141_000 and gpus[0]["driver"] == "570.86.15"
    assert gpus[0]["cuda_driver_version"] == "12.8"


def test_an_nvml_without_a_driver_is_a_reason_not_a_crash(capsys, monkeypatch, no_accelerators):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu()], init_error=9))
    cuda = by_kind(capsys)["cuda"]
    assert cuda["devices"] == [] and "driver" in cuda["monitor"].lower()


def test_neuron_cores_and_who_holds_them_come_from_neuron_ls(capsys, neuron_host):  # noqa: F811
    neuron_host.configure(cores=4, held=True)
    neuron = by_kind(capsys)["neuron"]
    # The stand-ins provide both packages; torch-neuronx (inf2 / trn1) is preferred.
    assert neuron["available"] and neuron["api"] in ("torch-neuron", "torch-neuronx")
    (device,) = neuron["devices"]
    assert device["cores"] == 4 and device["core_ids"] == [0, 1, 2, 3]
    assert device["held_by"] == [{"pid": 4242, "command": "python serve.py"}]
    table = devices(capsys)
    assert "4242" in table and "serve.py" in table and "package torch-neuron" in table


@pytest.mark.parametrize("visible, expected", [
    (None, [0, 1, 2]),
    ("2,0", [1, None, 0]),
    ("GPU-bbb", [None, 0, None]),
    ("-1", [None, None, None]),
])
def test_each_gpu_says_which_cuda_index_names_it_here(monkeypatch, visible, expected):
    """NVML numbers every GPU of the host; cuda:N is the N-th of CUDA_VISIBLE_DEVICES."""
    from latency_tui.core.devices import cuda_index_of

    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    gpus = [{"index": i, "uuid": f"GPU-{c * 3}-x"} for i, c in enumerate("abc")]
    assert [cuda_index_of(g) for g in gpus] == expected
