"""build_inputs: which inputs win, their shapes and dtypes, and that seeds make them repeatable."""

from __future__ import annotations

from typing import Any, Optional

import pytest
import torch
from latency_tui.core.errors import UserError
from latency_tui.core.inputs import build_inputs
from latency_tui.core.loaded import LoadedModel
from latency_tui.core.specs import InputSpec, TensorSpec


def loaded_model(
    example_inputs: Any = None,
    default_inputs: Optional[InputSpec] = None,
    tokenizer: Any = None,
) -> LoadedModel:
    return LoadedModel(
        module=lambda *args, **kwargs: None,
        source="test:model",
        name="test",
        parameters=None,
        size_mb=None,
        example_inputs=example_inputs,
        default_inputs=default_inputs,
        tokenizer=tokenizer,
    )


class FakeTokenizer:
    """Records what it was asked and returns one row per text, as a tokenizer would."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, texts, **kwargs):
        self.calls.append((list(texts), kwargs))
        rows = len(texts)
        length = kwargs["max_length"]
        return {
            "input_ids": torch.ones(rows, length, dtype=torch.long),
            "attention_mask": torch.ones(rows, length, dtype=torch.long),
        }


TWO_TENSORS = (
    TensorSpec("pixels", (3, 8, 8), "float32"),
    TensorSpec("ids", (5,), "int64", low=10, high=20),
)


# -- synthetic tensors -----------------------------------------------------------------------


def test_positional_tensors_in_order_with_batch_dimension():
    pixels, ids = build_inputs(loaded_model(), InputSpec(tensors=TWO_TENSORS), 4)
    assert pixels.shape == (4, 3, 8, 8) and pixels.dtype == torch.float32
    assert ids.shape == (4, 5) and ids.dtype == torch.int64
    assert int(ids.min()) >= 10 and int(ids.max()) < 20


def test_keyword_tensors_by_name():
    inputs = build_inputs(loaded_model(), InputSpec(tensors=TWO_TENSORS, as_kwargs=True), 2)
    assert list(inputs) == ["pixels", "ids"]
    assert inputs["pixels"].shape == (2, 3, 8, 8)


def test_rows_differ_within_a_batch():
    (values,) = build_inputs(loaded_model(), InputSpec(tensors=(TensorSpec("x", (16,)),)), 2)
    assert not torch.equal(values[0], values[1])


def test_same_seed_same_tensors_other_seed_other_tensors():
    spec = InputSpec(tensors=TWO_TENSORS, seed=7)
    first = build_inputs(loaded_model(), spec, 3)
    again = build_inputs(loaded_model(), spec, 3)
    other = build_inputs(loaded_model(), InputSpec(tensors=TWO_TENSORS, seed=8), 3)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_seeding_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    build_inputs(loaded_model(), InputSpec(tensors=TWO_TENSORS), 2)
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize(
    "name, dtype",
    [
        ("float16", torch.float16),
        ("bfloat16", torch.bfloat16),
        ("float64", torch.float64),
        ("torch.int32", torch.int32),
        ("long", torch.int64),
        ("uint8", torch.uint8),
        ("bool", torch.bool),
    ],
)
def test_dtypes(name, dtype):
    (tensor,) = build_inputs(loaded_model(), InputSpec(tensors=(TensorSpec("x", (2,), name),)), 3)
    assert tensor.dtype == dtype and tensor.shape == (3, 2)


def test_unknown_dtype():
    spec = InputSpec(tensors=(TensorSpec("a", (1,)), TensorSpec("b", (1,), "floot32")))
    with pytest.raises(UserError, match=r"^inputs\.tensors\[1\]\.dtype: unknown dtype 'floot32'$"):
        build_inputs(loaded_model(), spec, 1)


def test_a_torch_attribute_is_not_a_dtype():
    with pytest.raises(UserError, match="unknown dtype 'nn'"):
        build_inputs(loaded_model(), InputSpec(tensors=(TensorSpec("a", (1,), "nn"),)), 1)


def test_empty_integer_range():
    spec = InputSpec(tensors=(TensorSpec("ids", (4,), "int64", low=3, high=3),))
    with pytest.raises(UserError, match=r"inputs\.tensors\[0\]: high \(3\) must be greater"):
        build_inputs(loaded_model(), spec, 1)


def test_negative_size():
    spec = InputSpec(tensors=(TensorSpec("x", (4, -1)),))
    with pytest.raises(UserError, match=r"inputs\.tensors\[0\]\.shape"):
        build_inputs(loaded_model(), spec, 1)


def test_batch_size_must_be_positive():
    with pytest.raises(UserError, match="batch size must be at least 1"):
        build_inputs(loaded_model(example_inputs=()), InputSpec(), 0)


# -- texts -----------------------------------------------------------------------------------


def test_texts_are_cycled_to_the_batch_and_padded():
    tokenizer = FakeTokenizer()
    spec = InputSpec(texts=("a", "b"), max_length=12)
    inputs = build_inputs(loaded_model(tokenizer=tokenizer), spec, 5)
    texts, options = tokenizer.calls[0]
    assert texts == ["a", "b", "a", "b", "a"]
    assert options == {
        "padding": "max_length",
        "truncation": True,
        "max_length": 12,
        "return_tensors": "pt",
    }
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert inputs["input_ids"].shape == (5, 12)


def test_texts_need_a_tokenizer():
    with pytest.raises(UserError, match=r"^inputs\.texts needs a model with a tokenizer \(hf:"):
        build_inputs(loaded_model(), InputSpec(texts=("hello",)), 1)


def test_texts_win_over_tensors():
    spec = InputSpec(texts=("x",), tensors=TWO_TENSORS, max_length=4)
    inputs = build_inputs(loaded_model(tokenizer=FakeTokenizer()), spec, 2)
    assert set(inputs) == {"input_ids", "attention_mask"}


# -- the model's own inputs ------------------------------------------------------------------


def test_example_tuple_is_repeated_to_the_batch():
    example = (torch.arange(4.0).reshape(1, 4), torch.tensor([[1, 2]]))
    first, second = build_inputs(loaded_model(example_inputs=example), InputSpec(), 3)
    assert first.shape == (3, 4) and second.shape == (3, 2)
    assert first.tolist() == [[0.0, 1.0, 2.0, 3.0]] * 3
    assert first.is_contiguous() and first.data_ptr() != example[0].data_ptr()


def test_example_dict_is_repeated_to_the_batch():
    example = {"ids": torch.zeros(1, 7, dtype=torch.long)}
    inputs = build_inputs(loaded_model(example_inputs=example), InputSpec(), 2)
    assert inputs["ids"].shape == (2, 7) and inputs["ids"].dtype == torch.long


def test_example_at_batch_size_one_is_used_as_is():
    example = (torch.zeros(1, 3),)
    (tensor,) = build_inputs(loaded_model(example_inputs=example), InputSpec(), 1)
    assert tensor is example[0]


def test_example_already_batched_runs_at_its_own_batch_size_only():
    # Inputs of batch 2 run as batch 2; at 4 they would be mislabelled, so 4 is refused.
    example = (torch.zeros(2, 3),)
    assert build_inputs(loaded_model(example_inputs=example), InputSpec(), 2)[0].shape == (2, 3)
    with pytest.raises(UserError, match=r"one batch of 2 .*batch size 4 cannot be run"):
        build_inputs(loaded_model(example_inputs=example), InputSpec(), 4)


def test_user_tensors_win_over_the_example():
    loaded = loaded_model(example_inputs=(torch.zeros(1, 9),))
    (tensor,) = build_inputs(loaded, InputSpec(tensors=(TensorSpec("x", (2,)),)), 2)
    assert tensor.shape == (2, 2)


def test_example_wins_over_the_default():
    default = InputSpec(tensors=(TensorSpec("x", (5,)),))
    loaded = loaded_model(example_inputs=(torch.zeros(1, 9),), default_inputs=default)
    (tensor,) = build_inputs(loaded, InputSpec(), 2)
    assert tensor.shape == (2, 9)


def test_default_inputs_are_used_last():
    default = InputSpec(tensors=(TensorSpec("x", (5,), "int64", high=3),), as_kwargs=True)
    inputs = build_inputs(loaded_model(default_inputs=default), InputSpec(), 2)
    assert inputs["x"].shape == (2, 5) and inputs["x"].dtype == torch.int64


def test_default_texts_use_the_tokenizer():
    default = InputSpec(texts=("sample",), max_length=8)
    loaded = loaded_model(default_inputs=default, tokenizer=FakeTokenizer())
    assert build_inputs(loaded, InputSpec(), 3)["input_ids"].shape == (3, 8)


def test_no_inputs_anywhere():
    with pytest.raises(UserError, match=r"'test:model' provides no example inputs"):
        build_inputs(loaded_model(), InputSpec(), 1)
