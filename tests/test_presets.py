"""Presets and plans: built-ins load, every field is checked, overrides apply, sweeps multiply."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from latency_tui.core.errors import UserError
from latency_tui.core.plan import Overrides, build_plan, parse_int_list
from latency_tui.core.presets import list_presets, load_preset, user_preset_dir


def test_builtin_presets_exist_and_build():
    names = {p.name for p in list_presets()}
    assert {"cpu-mlp", "cpu-bert", "bert-base-cased", "cuda-mlp", "cuda-bert", "cuda-resnet50",
            "neuron-mlp", "neuron-bert-base", "neuron-resnet50"} <= names
    for name in names:
        try:
            plan = build_plan(load_preset(name))
        except UserError as exc:
            # Without a Neuron package, tools or device nothing can say how many NeuronCores
            # "all" copies are: the message gives the backend's own reason.
            assert name.startswith("neuron-") and 'run.copies "all"' in str(exc)
            assert "the neuron device is not available here: " in str(exc), str(exc)
            continue
        assert plan.configs and plan.preset["name"] == name


def test_sweep_is_the_product_of_batch_copies_and_workers():
    plan = build_plan(load_preset("cpu-mlp"), Overrides(batch_sizes=(1, 8), copies=(1, 2), workers=(1, 2, 4)))
    assert len(plan.configs) == 12
    assert [(c.batch_size, c.copies, c.workers_per_copy) for c in plan.configs][:3] == [
        (1, 1, 1), (1, 1, 2), (1, 1, 4)]
    assert plan.preset["run"]["workers"] == [1, 2, 4]


def test_overrides_replace_the_preset():
    plan = build_plan(load_preset("cpu-mlp"), Overrides(model="builtin:noop", duration_s=2.5,
                                                        copy_mode="process", warmup_max_s=1.0))
    assert plan.model.source == "builtin:noop"
    assert plan.stop.duration_s == 2.5 and plan.stop.samples is None
    assert {c.copy_mode for c in plan.configs} == {"process"}
    assert plan.warmup.max_s == 1.0


def test_user_presets_shadow_builtins_and_are_listed():
    directory = user_preset_dir()
    directory.mkdir(parents=True)
    (directory / "cpu-mlp.toml").write_text('[model]\nsource = "builtin:noop"\n')
    (directory / "mine.toml").write_text('description = "my own"\n[model]\nsource = "builtin:mlp"\n')
    presets = {p.name: p for p in list_presets()}
    assert presets["cpu-mlp"].origin == "user" and presets["mine"].description == "my own"
    assert load_preset("cpu-mlp").model.source == "builtin:noop"


def test_relative_model_paths_resolve_against_the_preset_file(write_preset, tmp_path):
    (tmp_path / "net.py").write_text("def make():\n    return None\n")
    path = write_preset('[model]\nsource = "net.py:make"\n')
    plan = build_plan(load_preset(str(path)))
    assert plan.model.source == f"{tmp_path / 'net.py'}:make"


MLP = '[model]\nsource = "builtin:mlp"\n'


@pytest.mark.parametrize("text, message", [
    ('[model\nsource = "x"', "malformed TOML"),
    ('[run]\ndevice = "cpu"\n', "[model] with a source is required"),
    ('[model]\noptions = {}\n', "model.source is required"),
    ('[model]\nsource = 3\n', "model.source must be a non-empty string"),
    (MLP + '[run]\nbatch_sizes = "8"\n', "run.batch_sizes must be a list of positive integers"),
    (MLP + '[run]\nbatch_sizes = [0, 1]\n', "run.batch_sizes must be a list of positive integers"),
    (MLP + '[run]\nduration_s = 0\n', "run.duration_s must be > 0"),
    (MLP + '[run]\nduraton_s = 5\n', "run.duraton_s is not a known field"),
    (MLP + '[run]\ncopy_mode = "fork"\n', "run.copy_mode must be one of thread, process"),
    (MLP + '[warmup]\nmin_iterations = 10\nmax_iterations = 5\n', "warmup.min_iterations (10) exceeds"),
    (MLP + '[inputs]\n[[inputs.tensors]]\nshape = [0]\n', "inputs.tensors[0].shape must be"),
    ('[modle]\nsource = "builtin:mlp"\n', "'modle' is not a known section"),
])
def test_a_bad_preset_names_the_file_and_the_field(write_preset, text, message):
    path = write_preset(text)
    with pytest.raises(UserError) as caught:
        load_preset(str(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("overrides, message", [
    (Overrides(device="tpu"), "--device 'tpu': unknown device"),
    (Overrides(device="neuron:1"), "the neuron device takes no index"),
    (Overrides(device="cuda:one"), "give cuda, cuda:N"),
    (Overrides(model="builtin:nope"), "unknown built-in model"),
    (Overrides(model="no_such_module_xyz:Net"), "no module named 'no_such_module_xyz'"),
    (Overrides(model="missing/net.py:Net"), "no such file missing/net.py"),
    (Overrides(model="missing.pt"), "no such TorchScript file"),
    (Overrides(model="just-a-word"), "not a model source"),
    (Overrides(duration_s=0), "--duration: must be more than 0"),
    (Overrides(copy_mode="fork"), "--copy-mode"),
])
def test_bad_overrides_are_user_errors(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_plan(load_preset("cpu-mlp"), overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown preset 'nope'.*cpu-mlp"):
        load_preset("nope")
    with pytest.raises(UserError, match="no such file"):
        load_preset("./nope.toml")


@pytest.mark.parametrize("text, expected", [("1,2,4,8", (1, 2, 4, 8)), (" 8 ", (8,)), ("2,2,1", (2, 1))])
def test_parse_int_list(text, expected):
    assert parse_int_list(text, "batch") == expected


@pytest.mark.parametrize("text, message", [("0", "must be at least 1"), ("-1", "must be at least 1"),
                                           ("a", "is not an integer"), ("", "at least one value")])
def test_parse_int_list_rejects(text, message):
    with pytest.raises(UserError, match=message):
        parse_int_list(text, "batch")


def test_fake_device_options_are_checked_when_planning(write_preset):
    path = write_preset('[model]\nsource = "builtin:noop"\n[run]\ndevice = "fake"\n[device]\nlatency = 1\n')
    with pytest.raises(UserError, match="device option 'latency': unknown"):
        build_plan(load_preset(str(path)))


STANDINS = Path(__file__).resolve().parent / "standins"


@pytest.mark.parametrize("package, neuron_ls, reason", [
    (False, None, "no Neuron package is installed: the Neuron packages come from AWS's own "
                  "repository, not PyPI: pip install --extra-index-url "
                  "https://pip.repos.neuron.amazonaws.com torch-neuron"),
    (True, None, "neuron-ls not found: the Neuron tools (aws-neuronx-tools) are not installed"),
    (True, "FATA[0000] Failed to discover neuron devices", "no Neuron device (neuron-ls: FATA"),
], ids=["no-package", "no-tools", "no-device"])
def test_copies_all_on_a_host_without_neuron_says_why(package, neuron_ls, reason, tmp_path,
                                                      monkeypatch):
    import importlib.util

    if package:
        monkeypatch.syspath_prepend(str(STANDINS))  # stand-in torch_neuron / torch_neuronx
    elif importlib.util.find_spec("torch_neuron") or importlib.util.find_spec("torch_neuronx"):
        pytest.skip("a Neuron package is installed here")
    if neuron_ls:
        (tmp_path / "neuron-ls").write_text(
            f"#!{sys.executable}\nimport sys\nprint({neuron_ls!r}, file=sys.stderr)\nsys.exit(1)\n")
        (tmp_path / "neuron-ls").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as caught:
        build_plan(load_preset("neuron-mlp"))
    message = str(caught.value)
    assert message.startswith('preset neuron-mlp: run.copies "all": the neuron device is not '
                              "available here: ") and reason in message, message
    assert "cannot say" not in message


FAKE = '[model]\nsource = "builtin:noop"\n[run]\ndevice = "fake"\n'


def test_an_open_loop_preset_sweeps_its_rates_and_records_them(write_preset):
    path = write_preset(FAKE + 'mode = "open"\nrate = [100, 200.5]\narrivals = "constant"\n'
                               'batch_sizes = [1, 2]\n')
    plan = build_plan(load_preset(str(path)))
    assert [(c.batch_size, c.rate, c.arrivals) for c in plan.configs] == [
        (1, 100.0, "constant"), (1, 200.5, "constant"), (2, 100.0, "constant"),
        (2, 200.5, "constant")]
    assert plan.axis("rates") == (100.0, 200.5)
    run = plan.preset["run"]
    assert run["mode"] == "open" and run["rate"] == [100.0, 200.5] and run["arrivals"] == "constant"
    # Overrides: another rate, Poisson; --mode closed takes the rate away.
    plan = build_plan(load_preset(str(path)), Overrides(rates=(300.0,), arrivals="poisson"))
    assert {(c.rate, c.arrivals) for c in plan.configs} == {(300.0, "poisson")}
    closed = build_plan(load_preset(str(path)), Overrides(mode="closed"))
    assert {c.rate for c in closed.configs} == {None} and "mode" not in closed.preset["run"]
    assert "rate" not in closed.configs[0].to_dict()  # closed-loop sessions as they were


def test_a_rate_alone_means_the_open_loop_and_early_stop_is_planned(write_preset):
    plan = build_plan(load_preset(str(write_preset(FAKE))), Overrides(rates=(50.0,),
                                                                      early_stop_pct=5.0))
    assert plan.configs[0].rate == 50.0 and plan.configs[0].arrivals == "poisson"
    assert plan.configs[0].label == "batch 1, 1 x 1, 50/s poisson"
    assert plan.stop.early_stop_pct == 5.0 and plan.preset["run"]["early_stop_pct"] == 5.0
    path = write_preset(FAKE + "duration_s = 60\nearly_stop_pct = 2.5\nearly_stop_min_s = 5\n"
                               "early_stop_min_samples = 20000\n", name="early.toml")
    stop = build_plan(load_preset(str(path)), Overrides(samples=50_000, duration_s=30)).stop
    assert (stop.early_stop_pct, stop.early_stop_min_s, stop.early_stop_min_samples,
            stop.duration_s, stop.samples) == (2.5, 5, 20000, 30, 50_000)


@pytest.mark.parametrize("text, message", [
    ('mode = "open"\n', 'run.rate is required with mode = "open"'),
    ('mode = "half-open"\n', "run.mode must be one of closed, open"),
    ('rate = 100\n', 'run.rate needs mode = "open"'),
    ('arrivals = "constant"\n', 'run.arrivals needs mode = "open"'),
    ('mode = "open"\nrate = 100\narrivals = "bursty"\n', "run.arrivals must be one of poisson, constant"),
    ('mode = "open"\nrate = 0\n', "run.rate must be a positive number"),
    ('mode = "open"\nrate = [100, -1]\n', "run.rate must be a positive number"),
    ('mode = "open"\nrate = "fast"\n', "run.rate must be a positive number"),
    ('mode = "open"\nrate = 1e12\n', "run.rate must be a positive number"),
    ("early_stop_pct = 100\n", "run.early_stop_pct must be a percentage below 100"),
    ("early_stop_pct = 0\n", "run.early_stop_pct must be > 0"),
    ("early_stop_min_s = 2\n", "run.early_stop_min_s needs early_stop_pct"),
    ("early_stop_pct = 5\nduration_s = 2\nearly_stop_min_s = 3\n",
     "run.early_stop_min_s (3) exceeds run.duration_s (2)"),
    ("early_stop_pct = 5\nsamples = 500\nearly_stop_min_samples = 600\n",
     "run.early_stop_min_samples (600) exceeds run.samples (500)"),
    ("early_stop_pct = 5\nearly_stop_min_samples = 1.5\n",
     "run.early_stop_min_samples must be an integer"),
])
def test_bad_load_and_early_stop_fields_name_the_field(write_preset, text, message):
    path = write_preset(FAKE + text)
    with pytest.raises(UserError) as caught:
        load_preset(str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("overrides, message", [
    (Overrides(mode="open"), "--mode open: give --rate"),
    (Overrides(mode="closed", rates=(10.0,)), "--rate: needs --mode open"),
    (Overrides(arrivals="constant"), "--arrivals: needs --mode open"),
    (Overrides(rates=(float("nan"),)), "--rate: must be more than 0"),
    (Overrides(rates=(2e7,)), "--rate: must be more than 0 and at most"),
    (Overrides(early_stop_pct=150.0), "--early-stop: must be a percentage"),
    (Overrides(mode="sideways"), "--mode: 'sideways' is not one of closed, open"),
])
def test_bad_load_overrides_are_user_errors(overrides, message, write_preset):
    with pytest.raises(UserError) as caught:
        build_plan(load_preset(str(write_preset(FAKE))), overrides)
    assert message in str(caught.value)
