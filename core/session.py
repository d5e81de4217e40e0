"""The session file: one JSON document per session, rewritten atomically after every finished
configuration so that a crash loses at most the configuration in progress.

The schema (``schema_version`` 2; version 1 files are still read) is documented in the README;
the keys written here are the contract, and extra keys may be added without a version change.
Every value is type-checked as it is read (``fields``), so a session file from elsewhere is
either read faithfully or refused with one line naming the field. ``Session`` is also the model
the views read: the TUI shows a loaded session exactly as it shows a live one, and what is saved
is what is loaded, object for object.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from . import __version__
from .errors import UserError
from .fields import Fields
from .measurement import (
    PERCENTILE_KEYS, STATUSES, ConfigResult, LatencySummary, Throughput, Timeline,
)
from .paths import read_regular_file
from .samplestore import StoredSamples
from .specs import COPY_MODES, RunConfig

SCHEMA = "latency-tui/session"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: A session file larger than this is not one of ours (and would not fit a view's memory).
MAX_FILE_BYTES = 512 * 1024 * 1024


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class Session:
    """A run's record: where it ran, what it measured, and one result per configuration."""

    preset: Dict[str, Any] = field(default_factory=dict)
    host: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    results: List[ConfigResult] = field(default_factory=list)
    created: str = field(default_factory=now_iso)
    tool_version: str = __version__
    #: Every run of the session, in order: ``{"id", "started", "configurations", "preset"}``,
    #: each with the plan it ran (``preset`` above is the last run's). Each result's
    #: ``trial["run"]`` is the id of the run it came from.
    runs: List[Dict[str, Any]] = field(default_factory=list)

    def run_of(self, result: ConfigResult) -> Optional[int]:
        """The id of the run ``result`` came from (None in files from before run ids)."""
        run = result.trial.get("run") if isinstance(result.trial, dict) else None
        return run if isinstance(run, int) and not isinstance(run, bool) else None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tool_version": self.tool_version,
            "created": self.created,
            "host": self.host,
            "preset": self.preset,
            "model": self.model,
            "runs": self.runs,
            "results": [result_to_dict(r) for r in self.results],
        }

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The session file's text (what ``save_session`` writes)."""
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def table(self) -> List[Dict[str, Any]]:
        """One plain row per configuration (no pandas needed; ``pandas.DataFrame(rows)``
        takes it): the configuration, its status, latency in ms and samples/s."""
        rows = []
        for result in self.results:
            config, latency = result.config, result.latency
            row: Dict[str, Any] = {
                "device": config.device, "batch_size": config.batch_size,
                "copies": config.copies, "workers": config.workers_per_copy,
                "status": result.status, "samples": result.samples}
            for key in ("mean", "std", "p50", "p90", "p95", "p99", "p99.9", "max"):
                row[f"{key}_ms"] = latency.values().get(key) if latency else None
            row["samples_per_s"] = (result.throughput.samples_per_s
                                    if result.throughput else None)
            row["error"] = result.error
            rows.append(row)
        return rows

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "session") -> "Session":
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(f"{where}: not a latency-tui session (no \"schema\": \"{SCHEMA}\")")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS or isinstance(version, bool):
            raise UserError(
                f"{where}: schema_version {version!r} is not supported (this is {__version__}, "
                f"which reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        f = Fields(data, where)
        read = result_from_dict if version == 2 else result_from_v1
        return cls(
            preset=dict(f.table("preset", {}).data),
            host=dict(f.table("host", {}).data),
            model=dict(f.table("model", {}).data),
            results=[read(entry) for entry in f.tables("results")],
            created=f.string("created", ""),
            tool_version=f.string("tool_version", ""),
            runs=[_run(entry) for entry in f.tables("runs", [])],
        )


def _run(f: Fields) -> Dict[str, Any]:
    """One entry of ``runs``: its id checked, the rest (its plan) kept as written."""
    run = dict(f.data)
    run["id"] = f.number("id", integer=True, minimum=1)
    return run


def result_to_dict(result: ConfigResult) -> Dict[str, Any]:
    def summary(value: Optional[LatencySummary]) -> Optional[Dict[str, Any]]:
        return value.to_dict() if value is not None else None

    return {
        "config": result.config.to_dict(),
        "status": result.status,
        "error": result.error,
        "error_kind": result.error_kind,
        "traceback": result.traceback,
        "samples": result.samples,
        "duration_s": result.duration_s,
        "first_inference_ms": result.first_inference_ms,
        "warmup_iterations": result.warmup_iterations,
        "warmup_stable": result.warmup_stable,
        "latency_ms": summary(result.latency),
        "device_latency_ms": summary(result.device_latency),
        "throughput": result.throughput.to_dict() if result.throughput else None,
        "stages_ms": {name: s.to_dict() for name, s in result.stages.items()},
        "timeline": result.timeline.to_dict() if result.timeline else None,
        "utilisation": result.utilisation,
        "trial": result.trial,
        "warnings": list(result.warnings),
        "details": result.details,
        "latency_samples": None if result.latency_samples is None
        else result.latency_samples.to_dict(),
    }


def config_from_dict(f: Fields) -> RunConfig:
    copy_mode = f.string("copy_mode", "thread")
    if copy_mode not in COPY_MODES:
        raise f.fail("copy_mode", f"must be one of {', '.join(COPY_MODES)}, not {copy_mode!r}")
    return RunConfig(
        device=f.string("device"),
        batch_size=f.number("batch_size", integer=True, minimum=1),
        copies=f.number("copies", integer=True, minimum=1),
        workers_per_copy=f.number("workers_per_copy", integer=True, minimum=1),
        copy_mode=copy_mode,
        threads_per_copy=f.number("threads_per_copy", None, integer=True, minimum=1),
        device_options=dict(f.table("device_options", {}).data),
    )


def _common(f: Fields) -> Dict[str, Any]:
    """The fields versions 1 and 2 share."""
    status = f.string("status")
    if status not in STATUSES:
        raise f.fail("status", f"must be one of {', '.join(STATUSES)}, not {status!r}")
    throughput = f.table("throughput", None)
    return dict(
        config=config_from_dict(f.table("config")),
        status=status,
        error=f.string("error", None),
        samples=f.number("samples", 0, integer=True, minimum=0),
        duration_s=float(f.number("duration_s", 0.0, minimum=0)),
        first_inference_ms=_optional_float(f.number("first_inference_ms", None, minimum=0)),
        warmup_iterations=f.number("warmup_iterations", 0, integer=True, minimum=0),
        warmup_stable=f.boolean("warmup_stable", None),
        throughput=Throughput.from_dict(throughput.data, throughput.where) if throughput else None,
        warnings=f.strings("warnings", []),
        details=dict(f.table("details", {}).data),
    )


def result_from_dict(f: Fields) -> ConfigResult:
    """One result of a version 2 file."""
    def summary(key: str) -> Optional[LatencySummary]:
        table = f.table(key, None)
        return None if table is None else LatencySummary.from_dict(table.data, table.where)

    stages = f.table("stages_ms", {})
    timeline = f.table("timeline", None)
    kind = f.string("error_kind", None)
    stored = f.table("latency_samples", None)
    return ConfigResult(
        **_common(f),
        error_kind=kind,
        traceback=f.string("traceback", None),
        latency=summary("latency_ms"),
        device_latency=summary("device_latency_ms"),
        stages={name: LatencySummary.from_dict(value, stages.path(name))
                for name, value in stages.data.items()},
        timeline=Timeline.from_dict(timeline.data, timeline.where) if timeline else None,
        utilisation=_utilisation(f),
        trial=dict(f.table("trial", {}).data),
        latency_samples=StoredSamples.from_dict(stored.data, stored.where) if stored else None,
    )


def _utilisation(f: Fields) -> Dict[str, Dict[str, Any]]:
    """The utilisation summary, as the monitors write it (``monitors.sampler.summarise``): per
    reading label, numbers (``mean``, ``max``, ``samples``), a metric's ``{"mean", "max"}``, or
    the reason it was ``absent``; anything else is refused, naming the field."""
    table = f.table("utilisation", {})
    out: Dict[str, Dict[str, Any]] = {}
    for label, value in table.data.items():
        entry = Fields(value, table.path(label))
        checked: Dict[str, Any] = {}
        for key, item in entry.data.items():
            if key == "absent":
                checked[key] = entry.string(key)
            elif isinstance(item, dict):
                metric = Fields(item, entry.path(key))
                checked[key] = {name: metric.number(name) for name in metric.data}
            else:
                checked[key] = entry.number(key, integer=key == "samples",
                                            minimum=0 if key == "samples" else None)
        out[label] = checked
    return out


def result_from_v1(f: Fields) -> ConfigResult:
    """One result of a version 1 file: percentiles beside their intervals at the result's level,
    stages without intervals, and the summary's warnings merged into the result's."""
    common = _common(f)
    samples = common["samples"]

    def summary(values: Fields, with_intervals: bool) -> LatencySummary:
        intervals = {}
        if with_intervals:
            for key, pair in f.items("latency_ci_ms", {}):
                low, high = Fields({key: pair}, f.path("latency_ci_ms")).numbers(key)
                intervals[key] = (float(low), float(high))
        return LatencySummary(
            count=samples, min=float(values.number("min")), mean=float(values.number("mean")),
            std=float(values.number("std", minimum=0)), max=float(values.number("max")),
            percentiles={key: float(values.number(key)) for key in PERCENTILE_KEYS},
            intervals=intervals,
            confidence=float(f.number("confidence", 0.95)) if with_intervals else 0.95,
            exact=f.boolean("latency_exact", True) if with_intervals else True,
            relative_error=float(f.number("percentile_relative_error", 0.0, minimum=0))
            if with_intervals else 0.0,
        )

    latency = f.table("latency_ms", None)
    stages = f.table("stages_ms", {})
    return ConfigResult(
        **common,
        latency=summary(latency, True) if latency else None,
        stages={name: summary(Fields(value, stages.path(name)), False)
                for name, value in stages.data.items()},
    )


def _optional_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


PathLike = Union[str, "os.PathLike[str]"]


def session_target(path: PathLike, *, what: str = "--json") -> Path:
    """The file a session written to ``path`` lands in, or a ``UserError`` saying why it cannot.

    Only a regular file, or a new path in an existing directory, is ever written: a directory, a
    device (``/dev/null``), a FIFO or a socket is refused. A symbolic link is followed, and the
    file it points to is replaced (the link stays a link).
    """
    given = Path(path).expanduser()
    try:
        target = given.resolve() if given.is_symlink() else given
    except RuntimeError:  # Python < 3.13 says a loop so; 3.13 raises OSError (ELOOP)
        raise UserError(f"{what} {given}: is a symbolic link loop") from None
    except OSError as exc:
        raise UserError(f"{what} {given}: {exc.strerror or exc}") from None
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(f"{what} {given}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise UserError(f"{what} {given}: is {kind}; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{what} {given}: directory {parent} does not exist")
    return target


def check_writable(path: PathLike, *, what: str = "--json") -> Path:
    """Fail early, before anything runs, if the session could not be written to ``path``."""
    target = session_target(path, what=what)
    try:  # the only sure test, for root too: create a file there
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path}: not writable ({exc.strerror or exc})") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise UserError(f"{what} {path}: not writable")
    return target


def save_session(session: Session, path: PathLike) -> Path:
    """Write ``session`` to ``path`` atomically: a temporary file beside it, then a rename. The
    temporary file is removed on every way out, and what was at ``path`` is left whole."""
    return write_session_text(session_text(session), path)


def session_text(session: Session) -> str:
    """The session file's text: what ``save_session`` writes. Taken apart from the writing so
    that the TUI can take it on its own thread (a snapshot of a session it keeps changing) and
    leave the disk's write and fsync, which take as long as the disk does, to another."""
    return json.dumps(session.to_dict(), indent=2, allow_nan=False, default=_json_default)


def write_session_text(text: str, path: PathLike) -> Path:
    """``text`` (from ``session_text``) written to ``path`` atomically, as ``save_session``."""
    target = session_target(path, what="session")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a session is not
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_session(path: PathLike) -> Session:
    """Read a session file; a file that is not one raises ``UserError`` naming it."""
    source = Path(path).expanduser()
    return Session.from_dict(read_json(source), where=str(source))


def read_json(path: PathLike) -> Any:
    """A JSON file of ours (or a pytest-benchmark one), read within ``MAX_FILE_BYTES`` and
    never from a FIFO or /dev/zero: its data, or a ``UserError`` naming the file."""
    source = Path(path).expanduser()
    raw = read_regular_file(source, MAX_FILE_BYTES, str(source))
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise UserError(f"{source}: not UTF-8 text; not a session") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply; not a session") from None
    except ValueError as exc:
        raise UserError(f"{source}: not valid JSON ({exc})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
