"""Build a batch of model inputs on the host, from the preset's ``[inputs]`` or the model's own.

The first of these that exists decides:

1. ``InputSpec.texts``: tokenized by the model's tokenizer, padded to ``max_length``;
2. ``InputSpec.tensors``: synthetic tensors drawn from a generator seeded with ``seed``,
   so that every copy and every run measures the same numbers;
3. the source's example inputs (a factory's, for batch size 1), repeated along dimension 0;
4. the source's default inputs (a built-in's or a tokenizer's), by rules 1 and 2.

The result is a tuple of positional tensors or a dict of keyword tensors, as backends take it.
torch is imported only when there is a tensor to make: ``builtin:noop`` gets ``()`` without it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

from .errors import UserError
from .limits import batch_bytes_fit
from .models import LoadedModel
from .specs import InputSpec, TensorSpec

Inputs = Union[Tuple[Any, ...], Dict[str, Any]]


def build_inputs(loaded: LoadedModel, spec: InputSpec, batch_size: int) -> Inputs:
    """Make the inputs for one call of ``loaded.module`` at ``batch_size``."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    built = _from_spec(loaded, spec, batch_size)
    if built is not None:
        return built
    if loaded.example_inputs is not None:
        return _repeat_examples(loaded, batch_size)
    if loaded.default_inputs is not None:
        built = _from_spec(loaded, loaded.default_inputs, batch_size)
        if built is not None:
            return built
    raise UserError(
        f"model source {loaded.source!r} provides no example inputs: "
        "describe them in the preset's inputs.tensors"
    )


def _from_spec(loaded: LoadedModel, spec: InputSpec, batch_size: int) -> Optional[Inputs]:
    if spec.texts:
        return _tokenize(loaded, spec, batch_size)
    if spec.tensors:
        return synthesise(spec, batch_size)
    return None


def _tokenize(loaded: LoadedModel, spec: InputSpec, batch_size: int) -> Dict[str, Any]:
    if loaded.tokenizer is None:
        raise UserError("inputs.texts needs a model with a tokenizer (hf:...)")
    batch_bytes_fit(batch_size * spec.max_length * 8 * 3, f"batch size {batch_size}")
    texts = [spec.texts[i % len(spec.texts)] for i in range(batch_size)]
    encoded = loaded.tokenizer(
        texts,
        padding="max_length",
        truncation=True,
        max_length=spec.max_length,
        return_tensors="pt",
    )
    return dict(encoded.items())


def synthesise(spec: InputSpec, batch_size: int) -> Inputs:
    import torch

    per_row = sum(math.prod(t.shape) * _itemsize(_dtype(t.dtype, f"inputs.tensors[{i}]"))
                  for i, t in enumerate(spec.tensors))
    batch_bytes_fit(per_row * batch_size, f"batch size {batch_size}")
    generator = torch.Generator().manual_seed(spec.seed)
    tensors = []
    for index, tensor in enumerate(spec.tensors):
        field = f"inputs.tensors[{index}]"
        tensors.append(_random_tensor(tensor, batch_size, generator, field))
    if spec.as_kwargs:
        return {tensor.name: value for tensor, value in zip(spec.tensors, tensors)}
    return tuple(tensors)


def _random_tensor(tensor: TensorSpec, batch_size: int, generator: Any, field: str) -> Any:
    """Floating tensors from a standard normal; integers uniform in ``[low, high)``."""
    import torch

    dtype = _dtype(tensor.dtype, field)
    if any(not isinstance(size, int) or size < 0 for size in tensor.shape):
        raise UserError(
            f"{field}.shape: sizes must be non-negative integers, got {list(tensor.shape)}"
        )
    shape = (batch_size, *tensor.shape)
    if dtype.is_floating_point or dtype.is_complex:
        # Drawn in float32 and cast: CPU randn lacks some dtypes on older torch.
        return torch.randn(shape, generator=generator).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if tensor.high <= tensor.low:
        raise UserError(f"{field}: high ({tensor.high}) must be greater than low ({tensor.low})")
    return torch.randint(tensor.low, tensor.high, shape, generator=generator, dtype=dtype)


def _dtype(name: str, field: str) -> Any:
    """``"float32"``, ``"torch.int64"``, ``"long"``... to a ``torch.dtype``."""
    import torch

    key = name.strip().removeprefix("torch.")
    dtype = getattr(torch, key, None) if key.isidentifier() else None
    if not isinstance(dtype, torch.dtype):
        raise UserError(f"{field}.dtype: unknown dtype {name!r}")
    return dtype


def _itemsize(dtype: Any) -> int:
    """Bytes per element (``torch.dtype.itemsize`` is missing on torch 1.13)."""
    import torch

    return int(torch.empty(0, dtype=dtype).element_size())


def _repeat_examples(loaded: LoadedModel, batch_size: int) -> Inputs:
    example = loaded.example_inputs
    tensors = example.values() if isinstance(example, dict) else example
    batch_bytes_fit(batch_size * sum(t.numel() * t.element_size() for t in tensors),
                    f"batch size {batch_size}")
    if isinstance(example, dict):
        return {name: _repeat_rows(t, batch_size, loaded.source) for name, t in example.items()}
    return tuple(_repeat_rows(t, batch_size, loaded.source) for t in example)


def _repeat_rows(tensor: Any, batch_size: int, source: str) -> Any:
    """Repeat a batch-size-1 example tensor to ``batch_size`` rows (a copy, not a view)."""
    if batch_size == 1:
        return tensor
    if tensor.dim() == 0 or tensor.shape[0] != 1:
        raise UserError(
            f"model source {source!r}: example inputs must have batch size 1 to be repeated "
            f"to {batch_size}, got shape {list(tensor.shape)}"
        )
    return tensor.expand(batch_size, *tensor.shape[1:]).contiguous()
