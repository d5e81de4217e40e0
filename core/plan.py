"""From a preset and the user's overrides to a run plan: the sweep as a list of configurations.

A run is the product batch sizes x copies x workers, in that order (batch outermost, so the
table reads like a batch sweep). Overrides come from the command line or the TUI's editor and
are checked here with messages that name the argument.
"""

from __future__ import annotations

import importlib.util
import itertools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional, Tuple

from .backends import backend_class, check_device, device_kind
from .errors import UserError
from .limits import check_plan_limits
from .presets import ALL, MAX_RATE, MAX_SECONDS, Preset
from .searchspec import SearchSpec, check_search
from .specs import ARRIVALS, COPY_MODES, LOAD_MODES, ModelSpec, RunConfig, RunPlan, StopRule



@dataclass(frozen=True)
class Overrides:
    model: Optional[str] = None
    device: Optional[str] = None
    batch_sizes: Optional[Tuple[int, ...]] = None
    copies: Optional[Tuple[int, ...]] = None
    workers: Optional[Tuple[int, ...]] = None
    copy_mode: Optional[str] = None
    duration_s: Optional[float] = None
    samples: Optional[int] = None
    warmup_max_s: Optional[float] = None
    timeout_s: Optional[float] = None
    first_timeout_s: Optional[float] = None
    #: "closed" or "open"; open loop offers ``rates`` (requests per second) ``arrivals``.
    mode: Optional[str] = None
    rates: Optional[Tuple[float, ...]] = None
    arrivals: Optional[str] = None
    #: End a configuration once p99's interval is within +- this % of p99.
    early_stop_pct: Optional[float] = None
    #: A search instead of the sweep ("batch", "throughput", "slo", "rate") and its bounds.
    search: Optional[str] = None
    p99_ms: Optional[float] = None
    p50_ms: Optional[float] = None
    max_batch: Optional[int] = None
    max_memory_mb: Optional[float] = None


def parse_int_list(text: str, what: str) -> Tuple[int, ...]:
    """``"1,2,4,8"`` -> ``(1, 2, 4, 8)``; anything but positive integers is a ``UserError``, and
    so is an empty item (``"1,,2"``, ``"1,2,"``): a slip that would otherwise pass unseen."""
    values = []
    text = "".join(str(text).split())
    if not text:
        raise UserError(f"{what}: give at least one value, e.g. 1,2,4")
    for part in text.split(","):
        if not part:
            raise UserError(f"{what}: {text!r} has an empty item; give numbers between the "
                            "commas, e.g. 1,2,4")
        try:
            value = int(part)
        except ValueError:
            raise UserError(f"{what}: {part!r} is not an integer") from None
        if value <= 0:
            raise UserError(f"{what}: {value} must be at least 1")
        values.append(value)
    return tuple(dict.fromkeys(values))


def build_plan(preset: Preset, overrides: Overrides = Overrides()) -> RunPlan:
    o = overrides
    run = preset.run
    base = preset.path.parent if preset.path else None
    where = str(preset.path) if preset.path else f"preset {preset.name}"
    for what, value in (("--model", o.model), ("--device", o.device)):
        if value is not None and not value.strip():
            raise UserError(f"{what}: must not be empty")
    device = check_device(o.device if o.device is not None else run.device,
                          what="--device" if o.device is not None else f"{where}: run.device")
    backend = backend_class(device)
    # A preset that does not say how copies run gets the device's first way (a Neuron copy is
    # always a process of its own).
    given = isinstance(preset.data.get("run"), dict) and "copy_mode" in preset.data["run"]
    # And a preset's copy mode does not follow it onto a device given on the command line that
    # cannot run copies that way.
    if given and o.device is not None and run.copy_mode not in backend.copy_modes:
        given = False
    copy_mode = o.copy_mode or (run.copy_mode if given else backend.copy_modes[0])
    if copy_mode not in COPY_MODES:
        raise UserError(f"--copy-mode: {copy_mode!r} is not one of {', '.join(COPY_MODES)}")
    for what, value in (("--duration", o.duration_s), ("--warmup-max", o.warmup_max_s),
                        ("--timeout", o.timeout_s), ("--first-timeout", o.first_timeout_s)):
        if value is not None and not (0 < value <= MAX_SECONDS):
            raise UserError(f"{what}: must be more than 0 and at most {MAX_SECONDS:g} seconds, "
                            f"not {value:g}")
    if o.samples is not None and o.samples <= 0:
        raise UserError(f"--samples: must be at least 1, not {o.samples}")

    model = preset.model
    if o.model:
        model = ModelSpec(source=o.model)
    model = replace(
        model, source=resolve_source(model.source, base),
        preprocess=resolve_source(model.preprocess, base) if model.preprocess else None,
        postprocess=resolve_source(model.postprocess, base) if model.postprocess else None,
    )
    check_model_source(model.source, what="--model" if o.model else f"{where}: model.source")
    if model.source.endswith(".json") and device_kind(device) != "neuron":
        raise UserError(f"{where}: model.source {model.source!r} is a NeuronPerf model index: "
                        f"its models run on the neuron device, not {device}")

    stop = preset.stop
    if o.duration_s is not None or o.samples is not None:
        stop = replace(stop, duration_s=o.duration_s, samples=o.samples)
    if o.timeout_s is not None:
        stop = replace(stop, timeout_s=o.timeout_s)
    if not stop.duration_s and not stop.samples:
        raise UserError("run: give a duration_s or a samples count, or both")
    stop = _early_stop(stop, o.early_stop_pct)
    mode, rates, arrivals = _load(run, o)
    warmup = preset.warmup
    if o.warmup_max_s is not None:
        warmup = replace(warmup, max_s=o.warmup_max_s, min_s=min(warmup.min_s, o.warmup_max_s))
    # A copy's first inference may take warmup.first_timeout_s (cold: lazy initialisation),
    # or --first-timeout; but whoever says --timeout 2 never waits 600 s for it: then it gets
    # the larger of --timeout and --warmup-max (the warm-up it is part of), no more.
    if o.first_timeout_s is not None:
        warmup = replace(warmup, first_timeout_s=o.first_timeout_s)
    elif o.timeout_s is not None:
        warmup = replace(warmup, first_timeout_s=min(
            warmup.first_timeout_s, max(o.timeout_s, o.warmup_max_s or 0.0)))

    try:  # the [device] options, checked now (and without creating a backend), not mid-run
        device_options = backend.check_options(preset.device_options)
    except UserError as exc:
        raise UserError(f"{where}: [device] {exc}") from None
    if copy_mode not in backend.copy_modes:
        what = "--copy-mode" if o.copy_mode else f"{where}: run.copy_mode"
        raise UserError(f"{what} {copy_mode!r}: the {device} device runs copies as "
                        f"{' or '.join(backend.copy_modes)}")
    copies = tuple(o.copies or run.copies)
    if ALL in copies:
        units = backend.units(device_options, device)
        if units is None:  # the backend's own reason first: no package, no tools, no device
            reason = backend.unavailable(device_options, device)
            raise UserError(f"{where}: run.copies \"all\": " + (
                f"the {device} device is not available here: {reason}" if reason else
                f"the {device} device cannot say how many copies that is on this host "
                "(give numbers)"))
        copies = tuple(dict.fromkeys(units if c == ALL else c for c in copies))
    axes = {"batch_sizes": tuple(o.batch_sizes or run.batch_sizes),
            "copies": copies, "workers": tuple(o.workers or run.workers)}
    check_plan_limits(
        batch_sizes=axes["batch_sizes"], copies=axes["copies"], workers=axes["workers"],
        copy_mode=copy_mode, source=model.source, threads_per_copy=run.threads_per_copy,
        threads_what=f"{where}: run.threads_per_copy",
        what=tuple(flag if given else f"{where}: run.{field}" for flag, given, field in (
            ("--batch-sizes", o.batch_sizes, "batch_sizes"), ("--copies", o.copies, "copies"),
            ("--workers", o.workers, "workers"))))
    for count in axes["copies"]:
        problem = backend.plan_check(device_options, device, count)
        if problem:
            what = "--copies" if o.copies else f"{where}: run.copies"
            raise UserError(f"{what} {count}: {problem}")
    if mode == "open":
        axes["rates"] = rates
    configs = tuple(
        RunConfig(device=device, batch_size=b, copies=c, workers_per_copy=w, copy_mode=copy_mode,
                  threads_per_copy=run.threads_per_copy, device_options=dict(device_options),
                  rate=r, arrivals=arrivals)
        for b, c, w, r in itertools.product(axes["batch_sizes"], axes["copies"], axes["workers"],
                                            rates if mode == "open" else (None,))
    )
    recorded = {
        "name": preset.name,
        "origin": preset.origin,
        "path": str(preset.path) if preset.path else None,
        "description": preset.description,
        "model": asdict(model),
        "inputs": _jsonable(asdict(preset.inputs)),
        "run": {
            "device": device, "batch_sizes": list(axes["batch_sizes"]),
            "copies": list(axes["copies"]), "workers": list(axes["workers"]),
            "copy_mode": copy_mode, "threads_per_copy": run.threads_per_copy,
            "duration_s": stop.duration_s, "samples": stop.samples, "sample_cap": run.sample_cap,
            "timeout_s": stop.timeout_s,
            **({"mode": mode, "rate": list(rates), "arrivals": arrivals} if mode == "open"
               else {}),
            **({"early_stop_pct": stop.early_stop_pct, "early_stop_min_s": stop.early_stop_min_s,
                "early_stop_min_samples": stop.early_stop_min_samples}
               if stop.early_stop_pct is not None else {}),
        },
        "device": dict(device_options),
        "warmup": asdict(warmup),
    }
    search = _search(preset, o)
    if search is not None:
        recorded["search"] = search.to_dict()
    inputs = preset.inputs
    if inputs.dataset:
        inputs = replace(inputs, dataset=resolve_source(inputs.dataset, base))
    return RunPlan(name=preset.name, model=model, inputs=inputs, configs=configs,
                   stop=stop, warmup=warmup, sample_cap=run.sample_cap, preset=recorded, axes=axes,
                   search=search)


def _search(preset: Preset, o: Overrides) -> Optional[SearchSpec]:
    """The preset's ``[search]``, or the one the flags ask for (they replace it whole: a
    ``--search`` names its own bounds), or None for the sweep."""
    flags = {"kind": o.search, "p99_ms": o.p99_ms, "p50_ms": o.p50_ms, "max_batch": o.max_batch,
             "max_memory_mb": o.max_memory_mb}
    if o.search is None:
        given = [name for name, value in flags.items() if value is not None]
        if not given:
            return preset.search
        if preset.search is None:
            raise UserError(f"--{given[0].replace('_', '-')}: needs --search (batch, "
                            "throughput, slo or rate)")
        return check_search(replace(preset.search, **{k: flags[k] for k in given}),
                            {k: f"--{k.replace('_', '-')}" for k in flags})
    spec = SearchSpec(**{k: v for k, v in flags.items() if v is not None})
    return check_search(spec, {"kind": "--search", **{k: f"--{k.replace('_', '-')}"
                                                      for k in flags if k != "kind"}})


def _early_stop(stop: StopRule, pct: Optional[float]) -> StopRule:
    """The stop rule with ``--early-stop`` applied, and its default minimums held under its
    maximums (``--early-stop 5 --duration 0.5`` may stop from 0.5 s, not from 1 s)."""
    if pct is not None:
        if not 0 < pct < 100:
            raise UserError(f"--early-stop: must be a percentage more than 0 and below 100, "
                            f"not {pct:g}")
        stop = replace(stop, early_stop_pct=pct)
    if stop.early_stop_pct is None:
        return stop
    return replace(
        stop,
        early_stop_min_s=min(stop.early_stop_min_s, stop.duration_s or stop.early_stop_min_s),
        early_stop_min_samples=min(stop.early_stop_min_samples,
                                   stop.samples or stop.early_stop_min_samples))


def _load(run: Any, o: Overrides) -> Tuple[str, Tuple[float, ...], str]:
    """(mode, rates, arrivals) from the preset and the overrides: ``--rate`` alone means the
    open loop; a rate or arrivals with the closed loop is a slip, refused."""
    mode = o.mode or ("open" if o.rates else run.mode)
    if mode not in LOAD_MODES:
        raise UserError(f"--mode: {mode!r} is not one of {', '.join(LOAD_MODES)}")
    arrivals = o.arrivals or run.arrivals
    if arrivals not in ARRIVALS:
        raise UserError(f"--arrivals: {arrivals!r} is not one of {', '.join(ARRIVALS)}")
    if mode == "closed":
        for what, given in (("--rate", o.rates), ("--arrivals", o.arrivals)):
            if given:
                raise UserError(f"{what}: needs --mode open (a closed loop has no arrival rate)")
        return mode, (), arrivals
    rates = tuple(o.rates or run.rates)
    if not rates:
        raise UserError("--mode open: give --rate (requests per second, e.g. 200)")
    for rate in rates:
        if not (0 < rate <= MAX_RATE):
            raise UserError(f"--rate: must be more than 0 and at most {MAX_RATE:g} requests "
                            f"per second, not {rate:g}")
    return mode, tuple(dict.fromkeys(float(r) for r in rates)), arrivals


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _split_file_source(source: str) -> Optional[Tuple[str, str]]:
    """``path/to/file.py:attr`` -> (path, attr); None for other kinds of source."""
    head, sep, attr = source.rpartition(":")
    if sep and head.endswith(".py"):
        return head, attr
    return None


def resolve_source(source: str, base: Optional[Path]) -> str:
    """Expand ``~`` in a source's path, and make a preset's relative paths relative to the
    preset file, not the current directory, so that a preset works from wherever it is run."""
    file_source = _split_file_source(source)
    if file_source:
        path, attr = file_source
        path = str(Path(path).expanduser())
        if base is not None and not Path(path).is_absolute() and (base / path).exists():
            return f"{base / path}:{attr}"
        return f"{path}:{attr}"
    for prefix in ("torchscript:", "hf:", ""):
        rest = source[len(prefix):]
        if source.startswith(prefix) and rest.startswith("~"):
            source = prefix + str(Path(rest).expanduser())
            break
    if base is None:
        return source
    for prefix in ("torchscript:", "hf:", ""):
        if source.startswith(prefix):
            rest = source[len(prefix):]
            if rest and not Path(rest).is_absolute() and (base / rest).exists() and (
                    prefix or rest.endswith((".pt", ".ts", ".torchscript", ".json"))):
                return f"{prefix}{base / rest}"
    return source


def check_model_source(source: str, *, what: str) -> None:
    """Catch a model source that cannot possibly load before anything runs; what can only be
    known by loading (a hub name, an attribute) is checked when the model loads."""
    from .builtins import BUILTINS

    scheme, sep, rest = source.partition(":")
    if scheme == "object":  # a Python object handed over by the API (``objects``)
        return
    if scheme == "builtin":
        if rest not in BUILTINS:
            raise UserError(f"{what} {source!r}: unknown built-in model (choose from "
                            f"{', '.join('builtin:' + b for b in BUILTINS)})")
        return
    if scheme == "hf":
        if not rest:
            raise UserError(f"{what} {source!r}: give a hub name or a local directory after hf:")
        return
    if scheme == "torchscript" or (not sep and source.endswith((".pt", ".ts", ".torchscript"))):
        path = rest if scheme == "torchscript" else source
        if not Path(path).expanduser().is_file():
            raise UserError(f"{what} {source!r}: no such TorchScript file {path}")
        return
    if not sep and source.endswith(".json"):
        if not Path(source).expanduser().is_file():
            raise UserError(f"{what} {source!r}: no such NeuronPerf model index {source}")
        return
    file_source = _split_file_source(source)
    if file_source:
        path, attr = file_source
        if not Path(path).expanduser().is_file():
            raise UserError(f"{what} {source!r}: no such file {path}")
        if not attr:
            raise UserError(f"{what} {source!r}: name the attribute after the colon")
        return
    if sep and rest and scheme:
        try:
            found = importlib.util.find_spec(scheme)
        except Exception:  # a parent package that fails to import: report it as not found
            found = None
        if found is None:
            raise UserError(f"{what} {source!r}: no module named {scheme!r}")
        return
    raise UserError(f"{what} {source!r}: not a model source (use builtin:NAME, hf:NAME_OR_DIR, "
                    f"module:attr, path/to/file.py:attr or a TorchScript .pt file)")


def check_sources(plan: RunPlan) -> None:
    """Resolve the plan's model, preprocess and postprocess references (importing them), so
    that a misspelt attribute or option is bad input before anything runs."""
    from .models import check_source

    try:
        check_source(plan.model)
    except UserError as exc:
        where = plan.preset.get("path")
        raise UserError(f"{where}: {exc}" if where else str(exc)) from None
