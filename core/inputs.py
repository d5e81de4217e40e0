"""Build the batches of model inputs on the host, from the preset's ``[inputs]``, the user's
own inputs or the model's, and say honestly which batch size they are.

The first of these that exists decides:

1. a dataset (``InputSpec.dataset``, ``texts_file``): its examples collated into batches,
   several distinct batches cycled per inference (``datasets``);
2. ``InputSpec.texts``: tokenized by the model's tokenizer, padded as ``padding`` says;
3. ``InputSpec.tensors``: synthetic tensors drawn from a generator seeded with ``seed``,
   so that every copy and every run measures the same numbers;
4. the user's inputs (``InputSpec.provider``) or the source's: a function of the batch size
   builds the batch; tensors of batch size 1 are repeated along dimension 0; inputs already
   batched (a leading dimension above 1, a declared ``batch_size``) or of any other type are
   used as they are, at their own batch size and no other;
5. the source's default inputs (a built-in's or a tokenizer's), by rules 2 and 3.

A batch size the inputs cannot honour is refused (``UserError``), never run mislabelled: a
model that takes no inputs is batch 1 unless the user says otherwise. The result is a tuple of
positional arguments, a dict of keyword arguments or one object, as backends take it. torch is
imported only when there is a tensor to make: ``builtin:noop`` gets ``()`` without it.
"""

from __future__ import annotations

import math
import sys
from dataclasses import fields, is_dataclass
from typing import Any, Dict, List, Optional, Tuple

from .errors import UserError
from .limits import batch_bytes_fit
from .models import LoadedModel
from .specs import InputSpec, TensorSpec

Inputs = Any

#: What the inputs are, as the session records it: how each batch was made.
KINDS = ("dataset", "texts", "tensors", "built", "repeated", "given", "none")


def build_inputs(loaded: LoadedModel, spec: InputSpec, batch_size: int) -> Inputs:
    """Make the inputs for one call of ``loaded.module`` at ``batch_size``."""
    return build_batches(loaded, spec, batch_size)[0][0]


def build_batches(loaded: LoadedModel, spec: InputSpec, batch_size: int
                  ) -> Tuple[List[Inputs], Dict[str, Any]]:
    """The distinct batches one configuration cycles through (one unless a dataset gives
    more), and what the session records of them: their kind, the batch size the model
    really receives, how many distinct batches and examples."""
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    kind, value, fixed = classify(loaded, spec)
    if fixed is not None and batch_size != fixed:
        raise UserError(mismatch(kind, fixed, batch_size))
    facts: Dict[str, Any] = {"kind": kind, "batch_size": batch_size}
    if kind == "dataset":
        from .datasets import dataset_batches

        batches, more = dataset_batches(loaded, spec, batch_size)
        facts.update(more)
        return batches, facts
    if kind == "texts":
        from .datasets import text_batches

        batches, more = text_batches(loaded, value, batch_size)
        facts.update(more)
        return batches, facts
    if kind == "tensors":
        batch = synthesise(value, batch_size)
    elif kind == "built":
        batch = _built(value, batch_size)
    elif kind == "repeated":
        batch = _repeat_examples(loaded, value, batch_size)
    else:
        batch = value
    facts["distinct_batches"] = 1
    return [batch], facts


def mismatch(kind: str, fixed: int, batch_size: int) -> str:
    if kind == "none":
        return (f"the model takes no inputs, so each call is batch {fixed}: batch size "
                f"{batch_size} would report samples/s {batch_size / fixed:g} times too high "
                "(if each call does process a batch, say its size: inputs batch_size)")
    return (f"the inputs are one batch of {fixed} (already batched, used as they are): batch "
            f"size {batch_size} cannot be run with them; run batch size {fixed}, or give a "
            "function of the batch size that builds the batch (make_inputs)")


def classify(loaded: LoadedModel, spec: InputSpec) -> Tuple[str, Any, Optional[int]]:
    """(kind, what builds the batch, the only batch size it can be or None for any)."""
    if spec.dataset or spec.texts_file:
        return "dataset", None, None
    if spec.texts:
        if loaded.tokenizer is None:
            raise UserError("inputs.texts needs a model with a tokenizer (hf:...); a model or "
                            "preprocess step that takes raw texts gets them from a dataset")
        return "texts", spec, None
    if spec.tensors:
        return "tensors", spec, None
    if spec.provider:
        from .datasets import resolve

        given = resolve(spec.provider, "inputs")
        if callable(given) and not hasattr(given, "shape"):
            return "built", given, None
        from .models import example_inputs

        return _given(example_inputs(given)[0], spec.batch_size)
    if loaded.make_inputs is not None:
        return "built", loaded.make_inputs, None
    if loaded.example_inputs is not None:
        return _given(loaded.example_inputs, spec.batch_size)
    default = loaded.default_inputs
    if default is not None and (default.texts or default.tensors):
        return ("texts", default, None) if default.texts else ("tensors", default, None)
    raise UserError(
        f"model source {loaded.source!r} provides no example inputs: "
        "describe them in the preset's inputs.tensors (or pass inputs=)"
    )


def _given(value: Any, declared: Optional[int]) -> Tuple[str, Any, Optional[int]]:
    """Inputs given as they are: repeated when they are tensors of batch size 1 and nothing
    says otherwise, else used at their own batch size (declared, or their leading dimension)."""
    if isinstance(value, tuple) and not value:
        return "none", value, declared or 1
    leading = leading_sizes(value)
    if declared is not None:
        return "given", value, declared
    if leading == {1} and _all_tensors(value):
        return "repeated", value, None
    if len(leading) > 1:
        raise UserError(
            f"the inputs' leading dimensions differ ({', '.join(map(str, sorted(leading)))}): "
            "say their batch size (inputs batch_size), so that samples/s is not guessed")
    return "given", value, next(iter(leading), 1)


def leading_sizes(value: Any, depth: int = 2) -> set:
    """The leading dimensions of the tensors in ``value`` (a tensor, a tuple, list or dict of
    them, or an object such as a dataclass holding them), ``depth`` levels deep (the one
    argument ``(rows,)`` of a model taking a dataclass is two)."""
    torch = sys.modules.get("torch")
    if torch is None or depth == 0:
        return set()
    if isinstance(value, dict):
        parts = list(value.values())
    elif isinstance(value, (tuple, list)):
        parts = list(value)
    elif is_dataclass(value) and not isinstance(value, type):
        parts = [getattr(value, f.name) for f in fields(value)]
    elif isinstance(value, torch.Tensor):
        parts = [value]
    else:
        parts = list(getattr(value, "__dict__", {}).values())
    sizes = set()
    for part in parts:
        if isinstance(part, torch.Tensor):
            if part.dim() > 0:
                sizes.add(int(part.shape[0]))
        elif not isinstance(part, (str, bytes, int, float, bool)) and part is not None:
            sizes |= leading_sizes(part, depth - 1)
    return sizes


def _all_tensors(value: Any) -> bool:
    torch = sys.modules.get("torch")
    parts = value.values() if isinstance(value, dict) else value
    return torch is not None and isinstance(value, (tuple, dict)) and all(
        isinstance(p, torch.Tensor) and p.dim() > 0 for p in parts)


def _built(make: Any, batch_size: int) -> Inputs:
    """``make(batch_size)``, checked: its error names it, and a batch of another size than
    asked for (read from the leading dimension) is refused."""
    name = getattr(make, "__qualname__", None) or type(make).__name__
    try:
        batch = make(batch_size)
    except UserError:
        raise
    except Exception as exc:
        from .errors import one_line

        raise UserError(f"inputs: {name}({batch_size}) failed: {one_line(exc)}") from exc
    from .models import example_inputs

    batch = example_inputs(batch)[0]
    sizes = leading_sizes(batch)
    if sizes and sizes != {batch_size}:
        raise UserError(f"inputs: {name}({batch_size}) built a batch of "
                        f"{', '.join(map(str, sorted(sizes)))} (leading dimension), not "
                        f"{batch_size}")
    return batch


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


def _repeat_examples(loaded: LoadedModel, example: Any, batch_size: int) -> Inputs:
    tensors = example.values() if isinstance(example, dict) else example
    batch_bytes_fit(batch_size * sum(t.numel() * t.element_size() for t in tensors),
                    f"batch size {batch_size}")
    if isinstance(example, dict):
        return {name: _repeat_rows(t, batch_size) for name, t in example.items()}
    return tuple(_repeat_rows(t, batch_size) for t in example)


def _repeat_rows(tensor: Any, batch_size: int) -> Any:
    """Repeat a batch-size-1 example tensor to ``batch_size`` rows (a copy, not a view)."""
    if batch_size == 1:
        return tensor
    return tensor.expand(batch_size, *tensor.shape[1:]).contiguous()
