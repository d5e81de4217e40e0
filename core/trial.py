"""The planner's trial call: the model, its inputs and its steps checked once before anything is
measured, so that a mismatch is bad input (exit 2, nothing written) and not a failed run.

``check_inputs`` loads the model on the host (handing it to the engine afterwards, so it is not
loaded twice), works out which batch sizes its inputs can honestly be (inputs already batched
run at their own size only; a model that takes no inputs is batch 1), builds the inputs of the
smallest batch size and, on the CPU, calls preprocess, the model and postprocess once, each
failure naming its step, its function and its message.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import replace
from typing import Any, Optional, Tuple

from .backends import backend_class, device_kind
from .errors import UserError, one_line
from .specs import RunPlan

#: Devices where the trial call runs (the others only build the inputs: a CUDA-only model
#: cannot be called on the host, a compiled Neuron model not loaded there).
CALLED_ON = ("cpu",)


def check_inputs(plan: RunPlan, *, batch_sizes_given: bool = True,
                 what: str = "--batch-sizes") -> RunPlan:
    """``plan`` with its batch sizes made honest, or a ``UserError`` saying why it cannot run.

    Inputs that fix their batch size replace a sweep the user did not give
    (``batch_sizes_given`` False) and refuse one they did. The model is loaded and called in a
    thread of its own that ends with the check: torch work on the caller's (main) thread makes
    OpenMP keep a thread team for it, and the engine's timing threads then ran the same model
    up to 6 times slower (measured: 0.21 ms against 1.2 ms for a batch of 1024 on 2 cores)."""
    return in_own_thread(_check_inputs, plan, batch_sizes_given, what)


def in_own_thread(function: Any, *args: Any) -> Any:
    """``function(*args)`` run in a short-lived thread: its result, or its exception raised."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="latency-tui-trial", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # a ^C on the main thread is still seen while the check runs
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _check_inputs(plan: RunPlan, batch_sizes_given: bool, what: str) -> RunPlan:
    kinds = {device_kind(c.device) for c in plan.configs}
    source_text = plan.model.source
    if kinds <= {"fake"} or source_text.endswith(".json") or (
            "neuron" in kinds and (source_text.startswith("torchscript:") or
                                   source_text.endswith((".pt", ".ts", ".torchscript")))):
        return plan
    from .inputs import build_batches, classify, mismatch
    from .source import ModelSource, preload

    source = ModelSource(plan.model, plan.inputs)
    loaded = source.load()
    kind, _, fixed = classify(loaded, plan.inputs)
    if fixed is not None:
        plan = _fixed_batch(plan, kind, fixed, batch_sizes_given, mismatch, what)
    smallest = min(c.batch_size for c in plan.configs)
    batches, _ = build_batches(loaded, plan.inputs, smallest)
    devices = {(c.device, repr(sorted(c.device_options.items()))): c for c in plan.configs}
    for config in devices.values():
        problem = backend_class(config.device).inputs_problem(config.device_options, batches[0])
        if problem:
            raise UserError(f"[device] of {config.device}: {problem}")
    if kinds <= set(CALLED_ON):
        pre, post = _steps(plan)
        trial_call(loaded, batches[0], pre, post)
    preload(plan.model, loaded)
    return plan


def _fixed_batch(plan: RunPlan, kind: str, fixed: int, given: bool, mismatch: Any,
                 what: str) -> RunPlan:
    sizes = tuple(dict.fromkeys(c.batch_size for c in plan.configs))
    if plan.search is not None and plan.search.kind != "rate":
        raise UserError(f"the {plan.search.kind} search varies the batch size, which these "
                        f"inputs fix at {fixed}: " + mismatch(kind, fixed, max(sizes + (2,))))
    if sizes == (fixed,):
        return plan
    if given:
        wrong = next(s for s in sizes if s != fixed)
        raise UserError(f"{what} {','.join(map(str, sizes))}: "
                        + mismatch(kind, fixed, wrong))
    configs = tuple(dict.fromkeys(replace(c, batch_size=fixed) for c in plan.configs))
    recorded = dict(plan.preset)
    recorded["run"] = {**recorded.get("run", {}), "batch_sizes": [fixed]}
    return replace(plan, configs=configs, axes={**plan.axes, "batch_sizes": (fixed,)},
                   preset=recorded)


def _steps(plan: RunPlan) -> Tuple[Any, Any]:
    from .models import load_callable

    spec = plan.model
    pre = load_callable(spec.preprocess, "model.preprocess") if spec.preprocess else None
    post = load_callable(spec.postprocess, "model.postprocess") if spec.postprocess else None
    return pre, post


def trial_call(loaded: Any, inputs: Any, pre: Optional[Any] = None,
               post: Optional[Any] = None) -> Any:
    """Call preprocess, the model and postprocess once, as the timing loop will (``call_with``'s
    convention); a failure is a ``UserError`` naming the step, the function and the message."""
    from .backends.cpu import call_with, inference_context

    with inference_context():
        if pre is not None:
            inputs = _step("model.preprocess", pre, inputs, call_with)
        output = _step(f"the model {loaded.name}", loaded.module, inputs, call_with)
        if post is not None:
            _step("model.postprocess", post, (output,), call_with)
    return output


def _step(step: str, function: Any, inputs: Any, call_with: Any) -> Any:
    try:
        return call_with(function, inputs)()
    except (UserError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        name = getattr(function, "__qualname__", None) or type(function).__name__
        named = step if name in step else f"{step} ({name})"
        raise UserError(f"{named}, called with {describe_inputs(inputs)}, failed: "
                        f"{reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    """``one_line``, and where the exception has no message, where it was raised."""
    text = one_line(exc)
    if text != type(exc).__name__:
        return text
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" (raised in {tb.tb_frame.f_code.co_name}, line {tb.tb_lineno})" if tb else ""
    return f"{text} with no message{where}"


def describe_inputs(inputs: Any, depth: int = 0) -> str:
    """``a tuple of 2 (Tensor[1, 8] float32, Tensor[1, 4] int64)``: what a step was given."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(inputs, torch.Tensor):
        dtype = str(inputs.dtype).replace("torch.", "")
        return f"Tensor{list(inputs.shape)} {dtype}"
    if depth > 0 or not isinstance(inputs, (tuple, list, dict)):
        return type(inputs).__name__
    if isinstance(inputs, dict):
        parts = [f"{k}={describe_inputs(v, 1)}" for k, v in list(inputs.items())[:6]]
        return f"keywords ({', '.join(parts)}{', ...' if len(inputs) > 6 else ''})"
    parts = [describe_inputs(v, 1) for v in list(inputs)[:6]]
    if not inputs:
        return "no arguments"
    return (f"{len(inputs)} positional argument{'s' if len(inputs) != 1 else ''} "
            f"({', '.join(parts)}{', ...' if len(inputs) > 6 else ''})")
