"""Presets: TOML files that say what to measure and how.

Built-in presets ship in ``latency_tui.presets``; user presets live in
``<user config dir>/latency-tui/presets/NAME.toml`` and shadow built-ins of the same name; any
path to a ``.toml`` file works too. Every field is checked here, on load, so that a typo is
reported with the file and the field before anything runs. The format is documented in the
README.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import UserError
from .fields import MAX_INT
from .paths import read_regular_file
from .searchspec import SearchSpec, search_from_table
from .specs import (
    ARRIVALS, COPY_MODES, LOAD_MODES, ORDERS, PADDINGS, InputSpec, ModelSpec, StopRule, TensorSpec,
    WarmupPolicy,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the Python 3.9 stack
    import tomli as tomllib

DEFAULT_PRESET = "cpu-mlp"
#: ``copies = "all"``: one copy per device unit (NeuronCore), resolved when planning.
ALL = -1
#: The longest duration, warm-up or timeout accepted: a week (a longer one is a typo).
MAX_SECONDS = 7 * 24 * 3600.0
#: Bounds on any preset: its size, nesting, list lengths and string lengths.
MAX_PRESET_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_ITEMS = 10_000
MAX_STRING = 100_000
#: torch dtype names an input tensor may have (checked here, without importing torch).
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8",
          "bool", "float", "double", "half", "long", "int", "short", "complex64", "complex128")
_SECTIONS = {"name", "description", "model", "inputs", "run", "device", "warmup", "search"}
_RUN_KEYS = {
    "device", "batch_sizes", "copies", "workers", "copy_mode", "threads_per_copy",
    "duration_s", "samples", "sample_cap", "timeout_s", "mode", "rate", "arrivals",
    "early_stop_pct", "early_stop_min_s", "early_stop_min_samples", "price_per_hour",
}
#: The most requests per second an open-loop rate may ask for (a larger one is a typo).
MAX_RATE = 1e7


@dataclass(frozen=True)
class RunSection:
    device: str = "cpu"
    batch_sizes: Tuple[int, ...] = (1,)
    copies: Tuple[int, ...] = (1,)
    workers: Tuple[int, ...] = (1,)
    copy_mode: str = "thread"
    threads_per_copy: Optional[int] = None
    sample_cap: int = 2_000_000
    #: "closed" or "open" (``LOAD_MODES``); open loop offers ``rates`` (requests/s, swept).
    mode: str = "closed"
    rates: Tuple[float, ...] = ()
    arrivals: str = "poisson"
    #: US dollars per hour of the host: results get a cost per million inferences.
    price_per_hour: Optional[float] = None


@dataclass(frozen=True)
class Preset:
    name: str
    path: Optional[Path]
    description: str
    #: The TOML document as read.
    data: Dict[str, Any] = field(hash=False)
    #: "built-in", "user" or "file".
    origin: str = "file"
    model: ModelSpec = field(default_factory=lambda: ModelSpec("builtin:mlp"))
    inputs: InputSpec = field(default_factory=InputSpec)
    run: RunSection = field(default_factory=RunSection)
    device_options: Dict[str, Any] = field(default_factory=dict, hash=False)
    stop: StopRule = field(default_factory=StopRule)
    warmup: WarmupPolicy = field(default_factory=WarmupPolicy)
    search: Optional[SearchSpec] = None


def user_preset_dir() -> Path:
    from .paths import config_dir

    return config_dir() / "presets"


def _builtin_files() -> Dict[str, Any]:
    from importlib import resources

    root = resources.files("latency_tui.presets")
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".toml")}


def list_presets() -> List[Preset]:
    """Every preset this host knows, user presets first shadowing built-ins of the same name.
    A broken user preset is skipped here (loading it by name reports what is wrong)."""
    found: Dict[str, Preset] = {}
    user_dir = user_preset_dir()
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.toml")):
            try:
                found[path.stem] = _load_file(path, origin="user")
            except UserError:
                continue
    for name, resource in sorted(_builtin_files().items()):
        if name not in found:
            found[name] = parse_preset(resource.read_text(encoding="utf-8"), name=name,
                                       path=None, origin="built-in", where=f"preset {name}")
    return sorted(found.values(), key=lambda p: p.name)


def load_preset(name_or_path: str) -> Preset:
    """A preset by name (user, then built-in) or by path to a TOML file."""
    candidate = Path(name_or_path).expanduser()
    looks_like_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
    if looks_like_path:
        if not os.path.lexists(candidate):
            raise UserError(f"preset file {name_or_path}: no such file")
        return _load_file(candidate, origin="file")  # which refuses a FIFO, a device, a loop
    user_file = user_preset_dir() / f"{name_or_path}.toml"
    if os.path.lexists(user_file):
        return _load_file(user_file, origin="user")
    builtins = _builtin_files()
    if name_or_path in builtins:
        return parse_preset(builtins[name_or_path].read_text(encoding="utf-8"), name=name_or_path,
                            path=None, origin="built-in", where=f"preset {name_or_path}")
    known = sorted(set(builtins) | {p.stem for p in user_dir_files()})
    raise UserError(f"unknown preset {name_or_path!r} (known: {', '.join(known)}; "
                    f"or give a path to a .toml file)")


def user_dir_files() -> List[Path]:
    directory = user_preset_dir()
    return sorted(directory.glob("*.toml")) if directory.is_dir() else []


def _load_file(path: Path, *, origin: str) -> Preset:
    # Only a regular file, read with a bound: a FIFO (or /dev/zero) named *.toml must not hang.
    raw = read_regular_file(path, MAX_PRESET_BYTES, f"preset file {path}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"preset file {path}: not UTF-8 text (byte {exc.start})") from None
    return parse_preset(text, name=path.stem, path=path.resolve(), origin=origin, where=str(path))


# -- parsing ----------------------------------------------------------------------------------

class _Fields:
    """Typed reads from one TOML table, with errors that name the file and the field."""

    def __init__(self, table: Any, where: str, prefix: str) -> None:
        if not isinstance(table, dict):
            raise UserError(f"{where}: [{prefix}] must be a table")
        self.table, self.where, self.prefix = table, where, prefix

    def fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.where}: {self.prefix}.{key} {message}")

    def check_keys(self, allowed: set) -> None:
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise self.fail(unknown[0], f"is not a known field (known: {', '.join(sorted(allowed))})")

    def string(self, key: str, default: Optional[str] = None) -> Optional[str]:
        value = self.table.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(key, f"must be a non-empty string, not {value!r}")
        return value

    def number(self, key: str, default: Any, *, integer: bool = False, positive: bool = True,
               allow_zero: bool = False) -> Any:
        value = self.table.get(key, default)
        if value is None:
            return None
        kind = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise self.fail(key, f"must be {'an integer' if integer else 'a finite number'}, "
                                 f"not {value!r}")
        if positive and (value < 0 or (value == 0 and not allow_zero)):
            raise self.fail(key, f"must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
        return value

    def int_list(self, key: str, default: Tuple[int, ...], *, allow_all: bool = False
                 ) -> Tuple[int, ...]:
        """Positive integers; with ``allow_all``, also "all" (kept as ``ALL``: the planner makes
        it as many as the device has, one copy per NeuronCore)."""
        value = self.table.get(key, list(default))
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if allow_all and isinstance(value, list):
            value = [ALL if v == "all" else v for v in value]
        if (not isinstance(value, list) or not value
                or any(isinstance(v, bool) or not isinstance(v, int) or (v <= 0 and v != ALL)
                       for v in value)):
            extra = ' (or "all")' if allow_all else ""
            raise self.fail(key, f"must be a list of positive integers{extra}, not {value!r}")
        return tuple(dict.fromkeys(value))

    def rate_list(self, key: str) -> Tuple[float, ...]:
        """Requests per second: one positive number or a list of them."""
        value = self.table.get(key, [])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if (not isinstance(value, list)
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                       or v > MAX_RATE for v in value)):
            raise self.fail(key, f"must be a positive number of requests per second (at most "
                                 f"{MAX_RATE:g}) or a list of them, not {value!r}")
        return tuple(dict.fromkeys(float(v) for v in value))


def parse_preset(text: str, *, name: str, path: Optional[Path], origin: str, where: str) -> Preset:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: malformed TOML ({exc})") from None
    except RecursionError:
        raise UserError(f"{where}: nested too deeply to be a preset") from None
    _check_values(data, where, "", 0)
    unknown = sorted(set(data) - _SECTIONS)
    if unknown:
        raise UserError(f"{where}: {unknown[0]!r} is not a known section or field "
                        f"(known: {', '.join(sorted(_SECTIONS))})")
    top = _Fields(data, where, "preset")
    name = top.string("name", name) or name
    description = top.string("description", "") if data.get("description") else ""

    if "model" not in data:
        raise UserError(f"{where}: [model] with a source is required")
    m = _Fields(data["model"], where, "model")
    m.check_keys({"source", "options", "preprocess", "postprocess"})
    source = m.string("source")
    if source is None:
        raise m.fail("source", "is required (e.g. \"builtin:mlp\", \"hf:bert-base-cased\")")
    options = data["model"].get("options", {})
    if not isinstance(options, dict):
        raise m.fail("options", "must be a table")
    model = ModelSpec(source=source, options=dict(options), preprocess=m.string("preprocess"),
                      postprocess=m.string("postprocess"))

    inputs = _parse_inputs(data.get("inputs", {}), where, path.parent if path else None)

    r = _Fields(data.get("run", {}), where, "run")
    r.check_keys(_RUN_KEYS)
    copy_mode = r.string("copy_mode", "thread")
    if copy_mode not in COPY_MODES:
        raise r.fail("copy_mode", f"must be one of {', '.join(COPY_MODES)}, not {copy_mode!r}")
    mode = r.string("mode", "closed")
    if mode not in LOAD_MODES:
        raise r.fail("mode", f"must be one of {', '.join(LOAD_MODES)}, not {mode!r}")
    arrivals = r.string("arrivals", "poisson")
    if arrivals not in ARRIVALS:
        raise r.fail("arrivals", f"must be one of {', '.join(ARRIVALS)}, not {arrivals!r}")
    rates = r.rate_list("rate")
    if mode == "open" and not rates:
        raise r.fail("rate", "is required with mode = \"open\" (requests per second, e.g. 200)")
    for key in ("rate", "arrivals"):
        if mode == "closed" and key in r.table:
            raise r.fail(key, "needs mode = \"open\" (a closed loop has no arrival rate)")
    run = RunSection(
        device=r.string("device", "cpu"),
        batch_sizes=r.int_list("batch_sizes", (1,)),
        copies=r.int_list("copies", (1,), allow_all=True),
        workers=r.int_list("workers", (1,)),
        copy_mode=copy_mode,
        threads_per_copy=r.number("threads_per_copy", None, integer=True),
        sample_cap=r.number("sample_cap", 2_000_000, integer=True),
        mode=mode, rates=rates, arrivals=arrivals,
        price_per_hour=r.number("price_per_hour", None),
    )
    samples = r.number("samples", None, integer=True)
    # Samples alone means "stop after that many": no default duration then.
    duration = r.number("duration_s", None if samples else 10.0)
    if duration is not None and duration > MAX_SECONDS:
        raise r.fail("duration_s", f"must be at most a week (604800), not {duration!r}")
    timeout = r.number("timeout_s", None)
    if timeout is not None and timeout > MAX_SECONDS:
        raise r.fail("timeout_s", f"must be at most a week (604800), not {timeout!r}")
    stop = StopRule(duration_s=duration, samples=samples, timeout_s=timeout,
                    **_early_stop(r, duration, samples))

    device_options = data.get("device", {})
    if not isinstance(device_options, dict):
        raise UserError(f"{where}: [device] must be a table of backend options")

    w = _Fields(data.get("warmup", {}), where, "warmup")
    w.check_keys({f.name for f in fields(WarmupPolicy)})
    defaults = WarmupPolicy()
    warmup = WarmupPolicy(
        min_iterations=w.number("min_iterations", defaults.min_iterations, integer=True, allow_zero=True),
        max_iterations=w.number("max_iterations", defaults.max_iterations, integer=True),
        min_s=w.number("min_s", defaults.min_s, allow_zero=True),
        max_s=w.number("max_s", defaults.max_s),
        window=w.number("window", defaults.window, integer=True),
        tolerance=w.number("tolerance", defaults.tolerance),
        first_timeout_s=w.number("first_timeout_s", defaults.first_timeout_s),
    )
    if warmup.min_s > warmup.max_s:
        raise w.fail("min_s", f"({warmup.min_s}) exceeds warmup.max_s ({warmup.max_s})")
    if warmup.min_iterations > warmup.max_iterations:
        raise w.fail("min_iterations", f"({warmup.min_iterations}) exceeds warmup.max_iterations "
                                       f"({warmup.max_iterations})")
    return Preset(name=name, path=path, description=description, data=data, origin=origin,
                  model=model, inputs=inputs, run=run, device_options=dict(device_options),
                  stop=stop, warmup=warmup,
                  search=search_from_table(data["search"], where) if "search" in data else None)


def _early_stop(r: _Fields, duration: Optional[float], samples: Optional[int]) -> Dict[str, Any]:
    """The early-stop fields of ``[run]``, checked against the maximum they sit under."""
    defaults = StopRule()
    pct = r.number("early_stop_pct", None)
    if pct is not None and pct >= 100:
        raise r.fail("early_stop_pct", f"must be a percentage below 100, not {pct!r}")
    min_s = r.number("early_stop_min_s", defaults.early_stop_min_s, allow_zero=True)
    min_samples = r.number("early_stop_min_samples", defaults.early_stop_min_samples,
                           integer=True, allow_zero=True)
    if pct is None:
        for key in ("early_stop_min_s", "early_stop_min_samples"):
            if key in r.table:
                raise r.fail(key, "needs early_stop_pct (the interval width to stop at)")
    # A minimum given above its maximum is a slip; a default above it yields (``build_plan``).
    if "early_stop_min_s" in r.table and duration is not None and min_s > duration:
        raise r.fail("early_stop_min_s", f"({min_s}) exceeds run.duration_s ({duration})")
    if "early_stop_min_samples" in r.table and samples is not None and min_samples > samples:
        raise r.fail("early_stop_min_samples", f"({min_samples}) exceeds run.samples ({samples})")
    return {"early_stop_pct": pct, "early_stop_min_s": min_s,
            "early_stop_min_samples": min_samples}


def _check_values(value: Any, where: str, path: str, depth: int) -> None:
    """Every value of the document, whatever section it is in: finite numbers, integers that
    fit 64 bits, strings and lists of a sane size, no deep nesting. A NaN in ``[device]`` or in
    ``[model.options]`` would otherwise reach the session file, which JSON cannot hold."""
    name = path or "the document"
    if depth > MAX_DEPTH:
        raise UserError(f"{where}: {name} is nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, where, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            raise UserError(f"{where}: {name} has {len(value):,} items (at most {MAX_ITEMS:,})")
        for i, item in enumerate(value):
            _check_values(item, where, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: {name} must be a finite number, not {value!r}")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise UserError(f"{where}: {name} = {value} is out of range")
    elif isinstance(value, str) and len(value) > MAX_STRING:
        raise UserError(f"{where}: {name} is a string of {len(value):,} characters "
                        f"(at most {MAX_STRING:,})")


def _parse_inputs(table: Any, where: str, base: Optional[Path]) -> InputSpec:
    f = _Fields(table, where, "inputs")
    f.check_keys({"tensors", "texts", "max_length", "as_kwargs", "seed", "padding", "dataset",
                  "texts_file", "order", "max_batches", "batch_size"})
    for key, choices in (("padding", PADDINGS), ("order", ORDERS)):
        if f.string(key, choices[0]) not in choices:
            raise f.fail(key, f"must be one of {', '.join(choices)}, not {table[key]!r}")
    texts_file = f.string("texts_file")
    if texts_file:
        texts_file = str(Path(texts_file).expanduser())
        if base is not None and not Path(texts_file).is_absolute():
            texts_file = str(base / texts_file)
    texts = table.get("texts", [])
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise f.fail("texts", "must be a list of strings")
    tensors = []
    raw = table.get("tensors", [])
    if not isinstance(raw, list):
        raise f.fail("tensors", "must be an array of tables ([[inputs.tensors]])")
    for i, entry in enumerate(raw):
        t = _Fields(entry, where, f"inputs.tensors[{i}]")
        t.check_keys({"name", "shape", "dtype", "low", "high"})
        shape = entry.get("shape")
        if (not isinstance(shape, list)
                or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape)):
            raise t.fail("shape", f"must be a list of positive integers (no batch dimension), not {shape!r}")
        dtype = t.string("dtype", "float32")
        if dtype.replace("torch.", "", 1) not in DTYPES:
            raise t.fail("dtype", f"unknown dtype {dtype!r} (e.g. {', '.join(DTYPES[:6])})")
        low = t.number("low", 0, integer=True, positive=False)
        high = t.number("high", 2, integer=True, positive=False)
        if high <= low:
            raise t.fail("high", f"({high}) must be greater than low ({low})")
        tensors.append(TensorSpec(name=t.string("name", f"input{i}"), shape=tuple(shape),
                                  dtype=dtype, low=low, high=high))
    as_kwargs = table.get("as_kwargs", False)
    if not isinstance(as_kwargs, bool):
        raise f.fail("as_kwargs", f"must be true or false, not {as_kwargs!r}")
    return InputSpec(
        tensors=tuple(tensors), texts=tuple(texts),
        max_length=f.number("max_length", 128, integer=True), as_kwargs=as_kwargs,
        seed=f.number("seed", 0, integer=True, allow_zero=True),
        padding=f.string("padding", "max_length"), order=f.string("order", "cycle"),
        dataset=f.string("dataset"), texts_file=texts_file,
        max_batches=f.number("max_batches", 64, integer=True),
        batch_size=f.number("batch_size", None, integer=True),
    )
