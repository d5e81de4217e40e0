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

import contextlib
import importlib
import importlib.util
import itertools
import os
import re
import sys
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

from . import objects
from .builtins import DEFAULTS, builtin_options, load_builtin
from .errors import UserCodeExit, UserError, one_line
from .loaded import LoadedModel, loaded_module
from .specs import ModelSpec

TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript")
_ATTRIBUTE_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_module_numbers = itertools.count()


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the model ``spec.source`` names, in eval mode, or raise ``UserError`` saying why not."""
    with user_argv(spec.source):
        return _load(spec)


@contextlib.contextmanager
def user_argv(source: str) -> Iterator[None]:
    """``sys.argv`` as user code should see it while it loads: its own source and no arguments,
    so that a model that parses the command line does not parse latency-tui's (and does not
    print errors that read as latency-tui's own)."""
    saved = list(sys.argv)
    sys.argv[:] = [source]
    try:
        yield
    finally:
        sys.argv[:] = saved


def _load(spec: ModelSpec) -> LoadedModel:
    source = spec.source.strip()
    options = dict(spec.options)
    if source.startswith("builtin:"):
        return load_builtin(source, options)
    if source.startswith("hf:"):
        from .hf import load_pretrained

        module, tokenizer, default_inputs = load_pretrained(source, source[3:], options)
        return loaded_module(module, source, source[3:], None, default_inputs, tokenizer)
    if objects.is_reference(source):
        return _load_object(source)
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
    with user_argv(spec.source):
        _check(spec)


def _check(spec: ModelSpec) -> None:
    scheme, _, rest = spec.source.partition(":")
    label = f"model source {spec.source!r}"
    if scheme == "builtin" and rest in DEFAULTS:
        builtin_options(spec.source, DEFAULTS[rest], dict(spec.options))
    elif scheme == "hf":
        if rest.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(rest)):
            raise UserError(f"{label}: no such directory {rest}")
    elif spec.source.endswith(".json") or objects.is_reference(spec.source):
        pass  # a NeuronPerf model index (the Neuron backend reads it), or an object
    elif ":" in spec.source and not spec.source.startswith("torchscript:"):
        _resolve_reference(spec.source, label)
    for what, ref in (("model.preprocess", spec.preprocess), ("model.postprocess", spec.postprocess)):
        if ref:
            load_callable(ref, what)


def needs_folder(refs: Iterable[Optional[str]], folder: str) -> bool:
    """Whether a ``package.module:attr`` among ``refs`` can only be imported from ``folder``
    (the current directory, say): its top-level module is not on the import path but is in
    ``folder``. Only then does the command line add ``folder`` to the path, and at its end, so
    that a stray ``torch.py`` in the current directory never shadows the real one."""
    for ref in refs:
        if not ref or ":" not in ref:
            continue
        location = ref.rpartition(":")[0]
        if location.endswith(".py") or "/" in location or "\\" in location or \
                location in ("builtin", "hf", "torchscript"):
            continue
        top = location.split(".")[0]
        if not top.isidentifier():
            continue
        try:
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            found = None
        here = os.path.join(folder, top)
        if found is None and (os.path.isfile(here + ".py") or os.path.isdir(here)):
            return True
    return False


def load_callable(ref: str, what: str) -> Callable[..., Any]:
    """Resolve a ``package.module:attr`` or ``path/to/file.py:attr`` reference to a callable.

    ``what`` names the field in messages (``model.preprocess``).
    """
    label = f"{what} {ref!r}"
    if objects.is_reference(ref):
        found, name = objects.resolve(ref)
        label = f"{what} {name}"
    else:
        found = _resolve_reference(ref.strip(), label)
    if not callable(found):
        raise UserError(f"{label}: {type(found).__name__} object is not callable")
    return found


# -- built-ins -------------------------------------------------------------------------------


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
            f"model source {source!r}: not a TorchScript file ({one_line(exc)})"
        ) from exc
    return loaded_module(module, source, os.path.basename(path), None, None)


# -- module:attr and file.py:attr ------------------------------------------------------------


def _load_reference(source: str) -> LoadedModel:
    """Load an nn.Module subclass, an nn.Module instance, or a zero-argument factory."""
    label = f"model source {source!r}"
    found = _resolve_reference(source, label)
    return load_found(found, source, source.rpartition(":")[2], label)


def _load_object(source: str) -> LoadedModel:
    """A model handed over as a Python object (``objects``), loaded as a reference's would be;
    a function that takes arguments is the model itself, and a zero-argument one that returns
    neither a model nor ``(model, inputs)`` is a workload measured as it is, with no inputs."""
    found, name = objects.resolve(source)
    label = f"model {name}"
    if not callable(found) or isinstance(found, type) or _is_module(found):
        return load_found(found, source, name, label)
    if _takes_arguments(found):
        return LoadedModel(module=found, source=source, name=name, parameters=None, size_mb=None)
    made = _call(found, name, label)
    if _is_module(made) or (isinstance(made, tuple) and len(made) == 2 and callable(made[0])):
        return load_found(lambda: made, source, name, label)
    return LoadedModel(module=found, source=source, name=name, parameters=None, size_mb=None,
                       example_inputs=())


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _takes_arguments(found: Callable[..., Any]) -> bool:
    import inspect

    try:
        parameters = inspect.signature(found).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: assume it takes inputs
        return True
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or
               (p.default is p.empty and p.kind != p.KEYWORD_ONLY) for p in parameters)


def load_found(found: Any, source: str, attr: str, label: str) -> LoadedModel:
    """What a reference or an object names, loaded: an nn.Module subclass (instantiated), an
    nn.Module, or a factory returning a model, ``(model, inputs)`` or ``(model, make_inputs)``."""
    nn = _NotTorch if "torch" not in sys.modules else sys.modules["torch"].nn
    if isinstance(found, type) and issubclass(found, nn.Module):
        return loaded_module(_call(found, attr, label), source, attr, None, None)
    if isinstance(found, nn.Module):
        return loaded_module(found, source, attr, None, None)
    if not callable(found):
        raise UserError(
            f"{label}: {attr} is a {type(found).__name__}, not an nn.Module, "
            "an nn.Module subclass or a factory"
        )
    made = _call(found, attr, label)
    example = make = None
    if isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
        made, (example, make) = made[0], example_inputs(made[1])
        nn = _NotTorch if "torch" not in sys.modules else sys.modules["torch"].nn
        if not isinstance(made, nn.Module):
            # A plain callable with its inputs (a Python workload, a compiled function):
            # measured as it is, with no parameters to count.
            return LoadedModel(module=made, source=source, name=attr, parameters=None,
                               size_mb=None, example_inputs=example, make_inputs=make)
    nn = _NotTorch if "torch" not in sys.modules else sys.modules["torch"].nn
    if not isinstance(made, nn.Module):
        raise UserError(
            f"{label}: {attr}() returned a {type(made).__name__}; expected an nn.Module, "
            "(module, inputs) or (module, make_inputs), where make_inputs(batch_size) builds "
            "a batch"
        )
    loaded = loaded_module(made, source, attr, example, None)
    loaded.make_inputs = make
    return loaded


#: What user code may raise here that must not end the tool: sys.exit(). (A KeyboardInterrupt
#: on the main thread is the user's own ^C; off it, the copy that runs the code catches it.)
_USER_EXITS = (SystemExit,)


def _exited(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return (f"called sys.exit({exc.code!r}) (what it printed is its own, not latency-tui's; "
                "a model must not parse the command line or exit)")
    return "raised KeyboardInterrupt"


class _NotTorch:
    """Stands in for ``torch.nn`` while torch is not imported: nothing the user's code made can
    be an ``nn.Module`` then, and a Python callable's load never pays for importing torch."""

    class Module:
        pass


def resolve_reference(ref: str, label: str) -> Any:
    """What a ``module:attr`` or ``path/to/file.py:attr`` reference names (imported)."""
    return _resolve_reference(ref.strip(), label)


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
        raise UserError(f"{label}: importing {name} failed: {one_line(exc)}") from exc
    except _USER_EXITS as exc:
        raise UserCodeExit(f"{label}: importing {name} {_exited(exc)}") from exc
    except Exception as exc:
        raise UserError(f"{label}: importing {name} failed: {one_line(exc)}") from exc


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
    except _USER_EXITS as exc:
        sys.modules.pop(module_name, None)
        raise UserCodeExit(f"{label}: importing {path} {_exited(exc)}") from exc
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise UserError(f"{label}: importing {path} failed: {one_line(exc)}") from exc
    finally:
        sys.path.remove(folder)
    return module


def _call(factory: Callable[[], Any], attr: str, label: str) -> Any:
    try:
        return factory()
    except _USER_EXITS as exc:
        raise UserCodeExit(f"{label}: {attr}() {_exited(exc)}") from exc
    except Exception as exc:
        raise UserError(f"{label}: {attr}() failed: {one_line(exc)}") from exc


def example_inputs(given: Any) -> Tuple[Any, Optional[Callable[[int], Any]]]:
    """(example inputs, make_inputs) from what a factory returned beside its model: a function
    of the batch size that builds a batch, or the inputs themselves (a tensor becomes a
    1-tuple, a list a tuple; a dict or any other object is kept as it is). Whether they agree
    with the model is found by the planner's trial call, not guessed here."""
    if isinstance(given, (tuple, list)):
        return tuple(given), None
    if isinstance(given, dict) or given is None:
        return given, None
    if callable(given) and not hasattr(given, "shape") and not _is_module(given):
        return None, given
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(given, torch.Tensor):
        return (given,), None
    return given, None


# -- shared ----------------------------------------------------------------------------------


