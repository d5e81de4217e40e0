"""The session file: one JSON document per session, rewritten atomically after every finished
configuration so that a crash loses at most the configuration in progress.

The schema (``schema_version`` 1) is documented in the README; the keys written here are the
contract, and extra keys may be added without a version change. ``Session`` is also the model
the views read: the TUI shows a loaded session exactly as it shows a live one.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from . import __version__
from .errors import UserError
from .events import ConfigFinished, Event, ModelLoaded, RunStarted
from .measurement import ConfigResult, LatencySummary, Throughput
from .specs import RunConfig

SCHEMA = "latency-tui/session"
SCHEMA_VERSION = 1
STATUSES = ("finished", "failed", "cancelled")


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class Session:
    """A run's record: where it ran, what it measured, and one result per configuration."""

    preset: Dict[str, Any] = field(default_factory=dict)
    host: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    results: List[ConfigResult] = field(default_factory=list)
    created: str = field(default_factory=_now_iso)
    tool_version: str = __version__

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tool_version": self.tool_version,
            "created": self.created,
            "host": self.host,
            "preset": self.preset,
            "model": self.model,
            "results": [result_to_dict(r) for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], *, where: str = "session") -> "Session":
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(f"{where}: not a latency-tui session (no \"schema\": \"{SCHEMA}\")")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{where}: schema_version {version!r} is not supported (this is {__version__}, "
                f"which reads version {SCHEMA_VERSION})"
            )
        for key in ("host", "preset", "model"):
            if not isinstance(data.get(key) or {}, dict):
                raise UserError(f"{where}: \"{key}\" must be an object")
        results = data.get("results")
        if not isinstance(results, list):
            raise UserError(f"{where}: \"results\" must be a list")
        parsed = []
        for i, entry in enumerate(results):
            try:
                parsed.append(result_from_dict(entry))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                raise UserError(f"{where}: results[{i}] is malformed ({reason})") from None
        return cls(
            preset=dict(data.get("preset") or {}),
            host=dict(data.get("host") or {}),
            model=dict(data.get("model") or {}),
            results=parsed,
            created=str(data.get("created", "")),
            tool_version=str(data.get("tool_version", "")),
        )


def _summary_to_dict(summary: LatencySummary) -> Dict[str, Any]:
    return summary.to_dict()


def result_to_dict(result: ConfigResult) -> Dict[str, Any]:
    latency = result.latency
    out: Dict[str, Any] = {
        "config": result.config.to_dict(),
        "status": result.status,
        "error": result.error,
        "samples": result.samples,
        "duration_s": result.duration_s,
        "first_inference_ms": result.first_inference_ms,
        "warmup_iterations": result.warmup_iterations,
        "warmup_stable": result.warmup_stable,
        "latency_ms": latency.to_dict() if latency else None,
        "throughput": result.throughput.to_dict() if result.throughput else None,
    }
    if latency is not None:
        out["latency_ci_ms"] = {k: list(v) for k, v in latency.intervals.items()}
        out["confidence"] = latency.confidence
        out["latency_exact"] = latency.exact
        out["percentile_relative_error"] = latency.relative_error
    if result.stages:
        out["stages_ms"] = {name: _summary_to_dict(s) for name, s in result.stages.items()}
    out["warnings"] = list(result.warnings) + (list(latency.warnings) if latency else [])
    out["details"] = result.details
    return out


def _summary_from_dict(
    values: Dict[str, Any], count: int, result: Dict[str, Any]
) -> LatencySummary:
    from .measurement import PERCENTILES

    intervals = {k: (float(v[0]), float(v[1])) for k, v in (result.get("latency_ci_ms") or {}).items()}
    return LatencySummary(
        count=count,
        min=float(values["min"]),
        mean=float(values["mean"]),
        std=float(values["std"]),
        max=float(values["max"]),
        percentiles={key: float(values[key]) for key, _ in PERCENTILES},
        intervals=intervals,
        confidence=float(result.get("confidence", 0.95)),
        exact=bool(result.get("latency_exact", True)),
        relative_error=float(result.get("percentile_relative_error", 0.0)),
    )


def result_from_dict(data: Dict[str, Any]) -> ConfigResult:
    config_fields = set(RunConfig.__dataclass_fields__)
    config = RunConfig(**{k: v for k, v in data["config"].items() if k in config_fields})
    status = data["status"]
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    samples = int(data.get("samples") or 0)
    latency = data.get("latency_ms")
    throughput = data.get("throughput")
    stages = {
        name: _summary_from_dict(values, samples, {})
        for name, values in (data.get("stages_ms") or {}).items()
    }
    return ConfigResult(
        config=config,
        status=status,
        error=data.get("error"),
        samples=samples,
        duration_s=float(data.get("duration_s") or 0.0),
        first_inference_ms=data.get("first_inference_ms"),
        warmup_iterations=int(data.get("warmup_iterations") or 0),
        warmup_stable=data.get("warmup_stable"),
        latency=_summary_from_dict(latency, samples, data) if latency else None,
        throughput=Throughput(**throughput) if throughput else None,
        stages=stages,
        warnings=tuple(data.get("warnings") or ()),
        details=dict(data.get("details") or {}),
    )


PathLike = Union[str, "os.PathLike[str]"]


def check_writable(path: PathLike, *, what: str = "--json") -> Path:
    """Fail early, before anything runs, if the session could not be written to ``path``."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UserError(f"{what} {target}: is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{what} {target}: directory {parent} does not exist")
    try:  # the only sure test, for root too: create a file there
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {target}: not writable ({exc.strerror or exc})") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise UserError(f"{what} {target}: not writable")
    return target


def save_session(session: Session, path: PathLike) -> Path:
    """Write ``session`` to ``path`` atomically: a temporary file beside it, then a rename."""
    target = Path(path).expanduser()
    text = json.dumps(session.to_dict(), indent=2, allow_nan=False, default=_json_default)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
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
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source}: not valid JSON ({exc})") from None
    return Session.from_dict(data, where=str(source))


class SessionRecorder:
    """An event sink that keeps a ``Session`` current and, given a path, saves it after
    every finished configuration."""

    def __init__(self, path: Optional[PathLike] = None, session: Optional[Session] = None):
        self.path = Path(path).expanduser() if path is not None else None
        self.session = session or Session()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.session.preset = dict(event.plan.preset)
            self.session.host = dict(event.host)
            # Known before loading, so that a run whose every configuration failed still says it.
            self.session.model = {"source": event.plan.model.source, "name": None,
                                  "parameters": None, "size_mb": None}
        elif isinstance(event, ModelLoaded):
            if self.session.model.get("name") is None:
                self.session.model = dict(event.model)
        elif isinstance(event, ConfigFinished):
            self.session.results.append(event.result)
            if self.path is not None:
                save_session(self.session, self.path)
