"""Datasets: many distinct inputs, cycled per inference, as real traffic has.

One repeated batch measures a cache, not a model: a data-dependent model (early exit, sparse
attention, a tokenizer's padding) or any cache reads too fast on it. A dataset is a sequence or
a ``torch.utils.data.Dataset`` of single examples, a file of texts, or the preset's ``texts``:
its examples are taken in order (``cycle``) or at random with a seed (``sample``), collated
into up to ``max_batches`` distinct batches per configuration, and the backend places them all
on the device before timing; each inference takes the next. What the session records says how
many distinct batches and examples were used.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Dict, List, Sequence, Tuple

from .errors import UserError, one_line
from .limits import batch_bytes_fit
from .loaded import LoadedModel
from .specs import InputSpec


def resolve(ref: str, what: str) -> Any:
    """The object a reference names: ``object:N`` (the Python API's) or ``module:attr``."""
    from . import objects

    if objects.is_reference(ref):
        return objects.resolve(ref)[0]
    from .models import resolve_reference

    return resolve_reference(ref, f"{what} {ref!r}")


def examples(spec: InputSpec) -> Tuple[Sequence[Any], str]:
    """The dataset's examples (indexable), and how messages name it."""
    if spec.texts_file:
        try:
            with open(spec.texts_file, encoding="utf-8") as handle:
                texts = [line.strip() for line in handle if line.strip()]
        except OSError as exc:
            raise UserError(f"inputs.texts_file {spec.texts_file!r}: {one_line(exc)}") from None
        if not texts:
            raise UserError(f"inputs.texts_file {spec.texts_file!r}: no text in it")
        return texts, f"inputs.texts_file {spec.texts_file!r}"
    name = f"inputs.dataset {spec.dataset!r}"
    found = resolve(spec.dataset or "", "inputs.dataset")
    if callable(found) and not hasattr(found, "__getitem__"):
        try:
            found = found()
        except Exception as exc:
            raise UserError(f"{name}: calling it failed: {one_line(exc)}") from exc
    if isinstance(found, (str, bytes)) or not hasattr(found, "__getitem__"):
        if hasattr(found, "__iter__") and not isinstance(found, (str, bytes)):
            # An iterable dataset: as many examples as the batches could use.
            found = list(itertools.islice(iter(found), spec.max_batches * 1024))
        else:
            raise UserError(f"{name}: a {type(found).__name__} is not a dataset (give a "
                            "sequence or a torch.utils.data.Dataset of examples)")
    try:
        size = len(found)
    except TypeError:
        raise UserError(f"{name}: a dataset without a length (give a sequence)") from None
    if size == 0:
        raise UserError(f"{name}: the dataset is empty")
    return found, name


def batch_indices(size: int, batch_size: int, spec: InputSpec) -> List[List[int]]:
    """Which examples make each distinct batch: enough batches to use every example once (or
    ``max_batches``), in order or sampled with the spec's seed."""
    count = max(1, min(spec.max_batches, math.ceil(size / batch_size)))
    if spec.order == "sample":
        pick = random.Random(spec.seed)
        return [[pick.randrange(size) for _ in range(batch_size)] for _ in range(count)]
    return [[(k * batch_size + j) % size for j in range(batch_size)] for k in range(count)]


def dataset_batches(loaded: LoadedModel, spec: InputSpec, batch_size: int
                    ) -> Tuple[List[Any], Dict[str, Any]]:
    items, name = examples(spec)
    plan = batch_indices(len(items), batch_size, spec)
    if all(isinstance(items[i], str) for i in plan[0]):
        texts = [[items[i] for i in indices] for indices in plan]
        batches = [_texts_batch(loaded, spec, batch) for batch in texts]
        if loaded.tokenizer is not None:
            return batches, {**_facts(spec, plan, len(items)), "padding": spec.padding}
    else:
        batches = []
        total = 0
        for indices in plan:
            try:
                batch = collate([items[i] for i in indices])
            except UserError:
                raise
            except Exception as exc:
                raise UserError(f"{name}: its examples do not make a batch: "
                                f"{one_line(exc)}") from exc
            total += nbytes(batch)
            batch_bytes_fit(total, f"{name}, batch size {batch_size}")
            batches.append(batch)
    return batches, _facts(spec, plan, len(items))


def text_batches(loaded: LoadedModel, spec: InputSpec, batch_size: int
                 ) -> Tuple[List[Any], Dict[str, Any]]:
    """``spec.texts``: cycled in order to fill as many distinct batches as they make."""
    texts = spec.texts
    plan = batch_indices(len(texts), batch_size, spec)
    batches = [_texts_batch(loaded, spec, [texts[i] for i in indices]) for indices in plan]
    return batches, {**_facts(spec, plan, len(texts)), "padding": spec.padding}


def _facts(spec: InputSpec, plan: List[List[int]], size: int) -> Dict[str, Any]:
    return {"distinct_batches": len(plan),
            "distinct_examples": len({i for indices in plan for i in indices}),
            "dataset_size": size, "order": spec.order}


def _texts_batch(loaded: LoadedModel, spec: InputSpec, texts: List[str]) -> Any:
    """A batch of texts tokenized (padded as ``spec.padding`` says), or the list itself for a
    model without a tokenizer (its preprocess step takes texts)."""
    if loaded.tokenizer is None:
        return (texts,)
    batch_bytes_fit(len(texts) * spec.max_length * 8 * 3, f"batch size {len(texts)}")
    encoded = loaded.tokenizer(texts, padding=spec.padding, truncation=True,
                               max_length=spec.max_length, return_tensors="pt")
    return dict(encoded.items())


def collate(items: List[Any]) -> Any:
    """Single examples made into one batch: tensors stacked along a new dimension 0 (tuples
    and dicts of them field by field); a tuple batch is positional arguments, a dict keywords."""
    from torch.utils.data import default_collate

    batch = default_collate(items)
    if isinstance(batch, list):
        return tuple(batch)
    if isinstance(batch, dict):
        return dict(batch)
    return (batch,)


def nbytes(batch: Any) -> int:
    parts = batch.values() if isinstance(batch, dict) else batch
    return sum(p.numel() * p.element_size() for p in parts if hasattr(p, "element_size"))
