"""The Python API's planner: a model and inputs as a script holds them, made into the same run
plan the command line builds from a preset and its flags.

``plan_for`` takes what ``latency_tui.benchmark`` is given (an ``nn.Module``, a class, a
factory, any callable or a source string; inputs as tensors, tuples, dicts, any object or a
function of the batch size; a dataset) and goes through ``build_plan`` with the command line's
own overrides, so that a script and ``latency-tui run`` measure alike. Objects are passed by
reference (``objects``); a copy process cannot see them, so ``copy_mode="process"`` takes a
model the copy can import: a class or function defined at the top of a module or file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import objects
from .errors import UserError
from .plan import Overrides, build_plan
from .presets import Preset, RunSection, load_preset
from .specs import InputSpec, ModelSpec, RunPlan

#: ``benchmark``'s keyword -> the ``Overrides`` field it sets (the command line's own names).
OVERRIDES = {
    "device": "device", "batch_sizes": "batch_sizes", "copies": "copies", "workers": "workers",
    "copy_mode": "copy_mode", "duration": "duration_s", "samples": "samples",
    "warmup_max": "warmup_max_s", "timeout": "timeout_s", "first_timeout": "first_timeout_s",
    "mode": "mode", "rate": "rates", "arrivals": "arrivals", "early_stop": "early_stop_pct",
    "search": "search", "p99_ms": "p99_ms", "p50_ms": "p50_ms", "max_batch": "max_batch",
    "max_memory_mb": "max_memory_mb",
}
#: Keywords that shape the inputs (``InputSpec`` fields).
INPUT_OPTIONS = ("order", "padding", "max_length", "max_batches", "seed", "texts")


@dataclass
class Prepared:
    """A plan and what it holds by reference (released once the run is over)."""

    plan: RunPlan
    batch_sizes_given: bool
    references: List[str] = field(default_factory=list)

    def release(self) -> None:
        objects.release(*self.references)


def plan_for(model: Any, inputs: Any = None, *, preset: Optional[str] = None,
             name: Optional[str] = None, preprocess: Any = None, postprocess: Any = None,
             dataset: Any = None, inputs_batch_size: Optional[int] = None,
             device_options: Optional[Dict[str, Any]] = None,
             threads_per_copy: Optional[int] = None, **options: Any) -> Prepared:
    """The run plan for ``benchmark``'s arguments (``UserError`` naming the argument)."""
    unknown = sorted(set(options) - set(OVERRIDES) - set(INPUT_OPTIONS))
    if unknown:
        known = sorted({*OVERRIDES, *INPUT_OPTIONS, "preset", "name", "preprocess", "postprocess",
                        "dataset", "inputs_batch_size", "device_options", "threads_per_copy"})
        raise UserError(f"benchmark(): unknown keyword {unknown[0]!r} (known: {', '.join(known)})")
    references: List[str] = []
    copy_mode = options.get("copy_mode")

    def by_reference(value: Any, what: str) -> Optional[str]:
        if value is None or isinstance(value, str):
            return value
        ref = importable(value)
        if ref is not None and copy_mode == "process":
            return ref
        if copy_mode == "process":
            raise UserError(
                f"{what}: copy_mode='process' runs each copy in a process of its own, which "
                f"cannot see a {describe(value)} made in this one: pass a class or function "
                "defined at the top of an importable module or file (not a lambda, a nested "
                "function or an instance), a source string 'module:attr', or copy_mode='thread'")
        ref = objects.register(value, label(value))
        references.append(ref)
        return ref

    base = load_preset(preset) if preset else Preset(
        name=name or "python", path=None, description="measured from Python", data={},
        origin="python", run=RunSection(threads_per_copy=threads_per_copy))
    source = by_reference(model, "model")
    if source is None:
        raise UserError("benchmark(): give the model (an nn.Module, a class, a factory, a "
                        "callable or a source string such as 'builtin:mlp')")
    spec = ModelSpec(source=source, options=dict(base.model.options) if preset and
                     source == base.model.source else {},
                     preprocess=by_reference(preprocess, "preprocess") or
                     (base.model.preprocess if preset else None),
                     postprocess=by_reference(postprocess, "postprocess") or
                     (base.model.postprocess if preset else None))
    input_spec = _inputs(base.inputs if preset else InputSpec(), inputs, dataset,
                         inputs_batch_size, options, by_reference)
    base = replace(base, name=name or (base.name if preset else label(model)), model=spec,
                   inputs=input_spec, device_options={**base.device_options,
                                                      **(device_options or {})})
    if threads_per_copy is not None:
        base = replace(base, run=replace(base.run, threads_per_copy=threads_per_copy))
    overrides = {OVERRIDES[k]: _tuple(k, v) for k, v in options.items()
                 if k in OVERRIDES and v is not None}
    plan = build_plan(base, Overrides(**overrides))
    return Prepared(plan, options.get("batch_sizes") is not None, references)


def _inputs(spec: InputSpec, inputs: Any, dataset: Any, batch_size: Optional[int],
            options: Dict[str, Any], by_reference: Any) -> InputSpec:
    changes: Dict[str, Any] = {k: options[k] for k in INPUT_OPTIONS
                               if options.get(k) is not None}
    if "texts" in changes:
        texts = changes["texts"]
        changes["texts"] = (texts,) if isinstance(texts, str) else tuple(texts)
    if inputs is not None:
        changes["provider"] = by_reference(inputs, "inputs")
    if dataset is not None:
        if isinstance(dataset, (str, os.PathLike)) and os.path.isfile(os.fspath(dataset)):
            changes["texts_file"] = os.fspath(dataset)
        else:
            changes["dataset"] = by_reference(dataset, "dataset")
    if batch_size is not None:
        changes["batch_size"] = batch_size
    try:
        return replace(spec, **changes)
    except TypeError as exc:
        raise UserError(f"benchmark(): {exc}") from None


def _tuple(key: str, value: Any) -> Any:
    """``batch_sizes=8`` as ``(8,)``: the sweep's axes take one value or several."""
    if key in ("batch_sizes", "copies", "workers", "rate"):
        values: Union[Sequence[Any], Any] = value
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            values = (values,)
        if not isinstance(values, (list, tuple, range)) or not values:
            raise UserError(f"benchmark(): {key} must be a number or a list of numbers, "
                            f"not {value!r}")
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0 or (
                    key != "rate" and not isinstance(item, int)):
                raise UserError(f"benchmark(): {key}: {item!r} is not a positive "
                                f"{'number' if key == 'rate' else 'integer'}")
        return tuple(dict.fromkeys(values))
    return value


def importable(value: Any) -> Optional[str]:
    """A source string a copy process can import ``value`` from, when it is a class or
    function defined at the top of a module or file; None otherwise."""
    qualname = getattr(value, "__qualname__", None)
    module_name = getattr(value, "__module__", None)
    if not isinstance(value, type) and not callable(value) or not qualname or not module_name:
        return None
    if "<" in qualname or not hasattr(value, "__name__"):  # a lambda, a nested function
        return None
    module = sys.modules.get(module_name)
    if module is None or getattr(module, qualname.split(".")[0], None) is None:
        return None
    if module_name == "__main__" or module_name.startswith("_latency_tui_user_"):
        path = getattr(module, "__file__", None)
        return f"{os.path.abspath(path)}:{qualname}" if path else None
    return f"{module_name}:{qualname}"


def label(value: Any) -> str:
    """How sessions and messages name a Python object: its class or function name."""
    if isinstance(value, str):
        return value
    if isinstance(value, type) or hasattr(value, "__qualname__"):
        return getattr(value, "__qualname__", None) or getattr(value, "__name__", "model")
    return type(value).__name__


def describe(value: Any) -> str:
    if getattr(value, "__name__", "") == "<lambda>":
        return "lambda"
    if "<locals>" in (getattr(value, "__qualname__", "") or ""):
        return "nested function or class"
    return f"{type(value).__name__} instance" if not callable(value) or not hasattr(
        value, "__qualname__") else type(value).__name__


def prepare(model: Any, inputs: Any = None, **options: Any) -> Tuple[RunPlan, Prepared]:
    """``plan_for`` then the planner's trial call (``check_inputs``)."""
    from .trial import check_inputs

    prepared = plan_for(model, inputs, **options)
    try:
        prepared.plan = check_inputs(prepared.plan, what="batch_sizes",
                                     batch_sizes_given=prepared.batch_sizes_given)
    except BaseException:
        prepared.release()
        raise
    return prepared.plan, prepared
