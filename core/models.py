"""Model sources: turn a ``ModelSpec.source`` string into a model ready to call on the host.

A source is one of::

    builtin:noop | builtin:mlp | builtin:bert     shipped with latency-tui
    hf:NAME_OR_DIR                                a Hugging Face model (see ``hf``)
    package.module:attr | path/to/file.py:attr    the user's own nn.Module, class or factory
    torchscript:PATH | PATH.pt | PATH.ts          a saved TorchScript module

Loading happens on the host, once per process (a spawned copy loads again from the spec), and
everything the user got wrong becomes a one-line ``UserError`` naming the source, so the
command line can refuse the run before anything is measured.

torch is imported only inside the loaders: ``builtin:noop`` measures the harness alone and must
not pay for torch, and ``latency-tui --help`` must stay fast.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import UserError
from .specs import InputSpec, ModelSpec, TensorSpec

#: Built-in options and their defaults; the keys are the names after ``builtin:``.
_BUILTIN_DEFAULTS: Dict[str, Dict[str, Any]] = {
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
}
BUILTINS: Tuple[str, ...] = tuple(_BUILTIN_DEFAULTS)

TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript")
_ATTRIBUTE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_module_numbers = itertools.count()


@dataclass
class LoadedModel:
    """A model on the host, with what is known about how to feed it."""

    #: An nn.Module in eval mode, or a plain callable (``builtin:noop``).
    module: Callable[..., Any]
    source: str
    name: str
    parameters: Optional[int]
    #: Bytes of parameters and buffers / 1e6.
    size_mb: Optional[float]
    #: Inputs for batch size 1 (a tuple or dict of tensors), when the source provides them.
    example_inputs: Any = None
    #: How to synthesise inputs when neither the user nor ``example_inputs`` says.
    default_inputs: Optional[InputSpec] = None
    tokenizer: Any = None

    def describe(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "parameters": self.parameters,
            "size_mb": self.size_mb,
        }


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the model ``spec.source`` names, in eval mode, or raise ``UserError`` saying why not."""
    source = spec.source.strip()
    options = dict(spec.options)
    if source.startswith("builtin:"):
        return _load_builtin(source, options)
    if source.startswith("hf:"):
        from .hf import load_pretrained

        module, tokenizer, default_inputs = load_pretrained(source, source[3:], options)
        return _loaded_module(module, source, source[3:], None, default_inputs, tokenizer)
    if source.startswith("torchscript:") or source.endswith(TORCHSCRIPT_SUFFIXES):
        return _load_torchscript(source)
    if ":" not in source:
        raise UserError(
            f"model source {source!r}: expected builtin:NAME, hf:NAME_OR_DIR, "
            "package.module:attr, path/to/file.py:attr or a TorchScript file (.pt, .ts)"
        )
    return _load_reference(source)


def check_source(spec: ModelSpec) -> None:
    """Resolve what ``spec`` names without loading weights: a built-in's options, the module or
    file and attribute of a reference, the preprocess and postprocess callables. Raises
    ``UserError`` for a misspelt name, so that it is bad input and not a failed run. Imports
    the user's modules (and so maybe torch): call it off any UI thread."""
    scheme, _, rest = spec.source.partition(":")
    label = f"model source {spec.source!r}"
    if scheme == "builtin" and rest in _BUILTIN_DEFAULTS:
        _builtin_options(spec.source, _BUILTIN_DEFAULTS[rest], dict(spec.options))
    elif scheme == "hf":
        if rest.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(rest)):
            raise UserError(f"{label}: no such directory {rest}")
    elif ":" in spec.source and not spec.source.startswith("torchscript:"):
        _resolve_reference(spec.source, label)
    for what, ref in (("model.preprocess", spec.preprocess), ("model.postprocess", spec.postprocess)):
        if ref:
            load_callable(ref, what)


def load_callable(ref: str, what: str) -> Callable[..., Any]:
    """Resolve a ``package.module:attr`` or ``path/to/file.py:attr`` reference to a callable.

    ``what`` names the field in messages (``model.preprocess``).
    """
    label = f"{what} {ref!r}"
    found = _resolve_reference(ref.strip(), label)
    if not callable(found):
        raise UserError(f"{label}: {type(found).__name__} object is not callable")
    return found


# -- built-ins -------------------------------------------------------------------------------


def _noop(*args: Any, **kwargs: Any) -> None:
    """The model that does nothing: its latency is the harness's own overhead."""


def _load_builtin(source: str, options: Dict[str, Any]) -> LoadedModel:
    name = source[len("builtin:") :]
    if name not in _BUILTIN_DEFAULTS:
        raise UserError(
            f"model source {source!r}: unknown built-in {name!r} (known: {', '.join(BUILTINS)})"
        )
    settings = _builtin_options(source, _BUILTIN_DEFAULTS[name], options)
    if name == "noop":
        return LoadedModel(_noop, source, "noop", None, None, example_inputs=())
    if name == "mlp":
        return _loaded_module(
            _tabular_mlp(settings), source, "tabular-mlp", None, _tabular_mlp_inputs(settings)
        )
    from .hf import random_bert

    seq_len, vocab_size = settings["seq_len"], settings["vocab_size"]
    default_inputs = InputSpec(
        tensors=(
            TensorSpec("input_ids", (seq_len,), "int64", low=0, high=vocab_size),
            TensorSpec("attention_mask", (seq_len,), "int64", low=1, high=2),
        ),
        as_kwargs=True,
    )
    return _loaded_module(
        random_bert(source, settings), source, "bert-style (random weights)", None, default_inputs
    )


def _builtin_options(
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


# -- TorchScript -----------------------------------------------------------------------------


def _load_torchscript(source: str) -> LoadedModel:
    path = source.removeprefix("torchscript:")
    if not os.path.isfile(path):
        raise UserError(f"model source {source!r}: no such file {path}")
    import torch

    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise UserError(
            f"model source {source!r}: not a TorchScript file ({_one_line(exc)})"
        ) from exc
    return _loaded_module(module, source, os.path.basename(path), None, None)


# -- module:attr and file.py:attr ------------------------------------------------------------


def _load_reference(source: str) -> LoadedModel:
    """Load an nn.Module subclass, an nn.Module instance, or a zero-argument factory."""
    label = f"model source {source!r}"
    found = _resolve_reference(source, label)
    from torch import nn

    attr = source.rpartition(":")[2]
    if isinstance(found, type) and issubclass(found, nn.Module):
        return _loaded_module(_call(found, attr, label), source, attr, None, None)
    if isinstance(found, nn.Module):
        return _loaded_module(found, source, attr, None, None)
    if not callable(found):
        raise UserError(
            f"{label}: {attr} is a {type(found).__name__}, not an nn.Module, "
            "an nn.Module subclass or a factory"
        )
    made = _call(found, attr, label)
    example = None
    if isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
        made, example = made[0], _example_inputs(made[1], label)
        if not isinstance(made, nn.Module):
            # A plain callable with its inputs (a Python workload, a compiled function):
            # measured as it is, with no parameters to count.
            return LoadedModel(module=made, source=source, name=attr, parameters=None,
                               size_mb=None, example_inputs=example)
    if not isinstance(made, nn.Module):
        raise UserError(
            f"{label}: {attr}() returned a {type(made).__name__}; "
            "expected an nn.Module, (module, example_inputs) or (callable, example_inputs)"
        )
    return _loaded_module(made, source, attr, example, None)


def _resolve_reference(ref: str, label: str) -> Any:
    """Import the module or file a reference names and return its attribute."""
    location, _, attr = ref.rpartition(":")
    if not location or not _ATTRIBUTE_PATH.match(attr):
        raise UserError(f"{label}: expected package.module:attr or path/to/file.py:attr")
    if location.endswith(".py") or "/" in location or "\\" in location:
        module = _import_file(location, label)
        where = os.path.basename(location)
    else:
        module = _import_module(location, label)
        where = f"module {location!r}"
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise UserError(f"{label}: {where} has no attribute {attr!r}")
        found = getattr(found, part)
    return found


def _import_module(name: str, label: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserError(f"{label}: no module named {name!r}") from exc
        raise UserError(f"{label}: importing {name} failed: {_one_line(exc)}") from exc
    except Exception as exc:
        raise UserError(f"{label}: importing {name} failed: {_one_line(exc)}") from exc


def _import_file(path: str, label: str) -> Any:
    """Run a Python file as a fresh module under a name of its own.

    Its folder is on ``sys.path`` while it runs, so that it can import the files beside it.
    """
    if not os.path.isfile(path):
        raise UserError(f"{label}: no such file {path}")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    module_name = f"_latency_tui_user_{next(_module_numbers)}_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{label}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise UserError(f"{label}: importing {path} failed: {_one_line(exc)}") from exc
    finally:
        sys.path.remove(folder)
    return module


def _call(factory: Callable[[], Any], attr: str, label: str) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise UserError(f"{label}: {attr}() failed: {_one_line(exc)}") from exc


def _example_inputs(example: Any, label: str) -> Any:
    """Check a factory's batch-size-1 example inputs; a lone tensor becomes a 1-tuple."""
    import torch

    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in example):
        return tuple(example)
    if isinstance(example, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in example.items()
    ):
        return dict(example)
    raise UserError(
        f"{label}: example inputs must be a tensor, a tuple of tensors or a dict of tensors, "
        f"got {type(example).__name__}"
    )


# -- shared ----------------------------------------------------------------------------------


def _loaded_module(
    module: Any,
    source: str,
    name: str,
    example_inputs: Any,
    default_inputs: Optional[InputSpec],
    tokenizer: Any = None,
) -> LoadedModel:
    """Put an nn.Module in eval mode and measure it."""
    module.eval()
    parameters = sum(p.numel() for p in module.parameters())
    size = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return LoadedModel(
        module=module,
        source=source,
        name=name,
        parameters=parameters,
        size_mb=size / 1e6,
        example_inputs=example_inputs,
        default_inputs=default_inputs,
        tokenizer=tokenizer,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
