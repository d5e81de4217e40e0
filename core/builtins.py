"""Built-in model sources: ``builtin:noop`` (the harness alone), ``builtin:mlp`` (a tabular
regression MLP), ``builtin:bert`` (a BERT-style classifier with random weights) and
``builtin:resnet50`` (torchvision's, random weights; needs the ``vision`` extra).

torch is imported only when a torch built-in is loaded, so that ``builtin:noop`` measures the
harness without paying for torch.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Tuple

from .errors import UserError
from .loaded import LoadedModel, loaded_module
from .specs import InputSpec, TensorSpec

#: Built-in options and their defaults; the keys are the names after ``builtin:``.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "noop": {},
    "mlp": {"cardinalities": [12, 31, 7], "embedding_dim": 4, "numerical": 4, "hidden": [64, 32]},
    "bert": {
        "seq_len": 128,
        "layers": 12,
        "hidden": 768,
        "heads": 12,
        "intermediate": 3072,
        "vocab_size": 30522,
        "num_labels": 2,
    },
    "resnet50": {"classes": 1000, "image_size": 224},
}
BUILTINS: Tuple[str, ...] = tuple(DEFAULTS)


def noop(*args: Any, **kwargs: Any) -> None:
    """The model that does nothing: its latency is the harness's own overhead."""


def load_builtin(source: str, options: Dict[str, Any]) -> LoadedModel:
    name = source[len("builtin:") :]
    if name not in DEFAULTS:
        raise UserError(
            f"model source {source!r}: unknown built-in {name!r} (known: {', '.join(BUILTINS)})"
        )
    settings = builtin_options(source, DEFAULTS[name], options)
    if name == "noop":
        return LoadedModel(noop, source, "noop", None, None, example_inputs=())
    if name == "mlp":
        return loaded_module(
            _tabular_mlp(settings), source, "tabular-mlp", None, _tabular_mlp_inputs(settings)
        )
    if name == "resnet50":
        return loaded_module(_resnet50(source, settings), source, "resnet50 (random weights)",
                             None, InputSpec(tensors=(TensorSpec(
                                 "images", (3, settings["image_size"], settings["image_size"]),
                                 "float32"),)))
    from .hf import random_bert

    seq_len, vocab_size = settings["seq_len"], settings["vocab_size"]
    default_inputs = InputSpec(
        tensors=(
            TensorSpec("input_ids", (seq_len,), "int64", low=0, high=vocab_size),
            TensorSpec("attention_mask", (seq_len,), "int64", low=1, high=2),
        ),
        as_kwargs=True,
    )
    return loaded_module(
        random_bert(source, settings), source, "bert-style (random weights)", None, default_inputs
    )


def _resnet50(source: str, settings: Dict[str, Any]) -> Any:
    """torchvision's ResNet-50 with seeded random weights (no download)."""
    try:
        from torchvision.models import resnet50
    except ImportError as exc:
        raise UserError(f"model source {source!r} needs torchvision: pip install torchvision, "
                        "one that matches your torch (latency-tui's 'vision' extra)") from exc
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return resnet50(weights=None, num_classes=settings["classes"])


def builtin_options(
    source: str, defaults: Dict[str, Any], options: Dict[str, Any]
) -> Dict[str, Any]:
    """Merge ``options`` over ``defaults``, refusing unknown keys and values of the wrong kind."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(defaults) or "none"
        raise UserError(f"model source {source!r}: unknown option {unknown[0]!r} (known: {known})")
    settings = dict(defaults)
    for key, value in options.items():
        if isinstance(defaults[key], list):
            if not isinstance(value, (list, tuple)) or not all(_positive_int(v) for v in value):
                raise UserError(
                    f"model source {source!r}: option {key!r} must be a list of positive "
                    f"integers, got {value!r}"
                )
            value = list(value)
        elif not _positive_int(value):
            raise UserError(
                f"model source {source!r}: option {key!r} must be a positive integer, got {value!r}"
            )
        settings[key] = value
    if "cardinalities" in settings and not settings["cardinalities"]:
        raise UserError(f"model source {source!r}: option 'cardinalities' must not be empty")
    return settings


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@functools.cache
def _tabular_mlp_class() -> type:
    """Define the MLP class on first use, so that importing this module does not import torch."""
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """A tabular regressor: one embedding per categorical column, concatenated with the
        numerical columns, then a ReLU MLP down to one output."""

        def __init__(
            self, cardinalities: List[int], embedding_dim: int, numerical: int, hidden: List[int]
        ) -> None:
            super().__init__()
            self.embeddings = nn.ModuleList(
                [nn.Embedding(count, embedding_dim) for count in cardinalities]
            )
            layers: List[nn.Module] = []
            width = len(cardinalities) * embedding_dim + numerical
            for size in hidden:
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)

        def forward(self, categorical: torch.Tensor, numerical: torch.Tensor) -> torch.Tensor:
            features = []
            for column, embedding in enumerate(self.embeddings):
                features.append(embedding(categorical[:, column]))
            features.append(numerical)
            return self.mlp(torch.cat(features, dim=1))

    return TabularMLP


def _tabular_mlp(settings: Dict[str, Any]) -> Any:
    import torch

    # Seeded for the same weights every run, without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _tabular_mlp_class()(
            settings["cardinalities"],
            settings["embedding_dim"],
            settings["numerical"],
            settings["hidden"],
        )


def _tabular_mlp_inputs(settings: Dict[str, Any]) -> InputSpec:
    cardinalities = settings["cardinalities"]
    return InputSpec(
        tensors=(
            # One range for every column: the smallest cardinality keeps each index valid.
            TensorSpec("categorical", (len(cardinalities),), "int64", high=min(cardinalities)),
            TensorSpec("numerical", (settings["numerical"],), "float32"),
        )
    )
