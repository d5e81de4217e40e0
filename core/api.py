"""The faces' one door into the engine: presets, plans, runs, sessions, monitors.

The command line, the TUI (and later the Python API and the pytest plugin) import what they need
from here, plus the events, the session model, the specs and the errors; nothing else of
``core``. Everything here is light to import (no torch, no Textual)::

    from latency_tui.core import api

    plan = api.build_plan(api.load_preset("cpu-mlp"), api.Overrides(batch_sizes=(1, 8)))
    handle = api.start(plan, print, isolation="thread")
    handle.wait()
    for result in handle.results: ...
"""

from __future__ import annotations

from typing import Any, Mapping

from .compare import (
    Bound, Breach, Comparison, Pair, breaches, compare_sessions, config_text, judged_percentiles,
    parse_bounds, unchecked_bounds,
)
from .errors import ConfigurationError, UserError, describe_error
from .isolation import ISOLATIONS, EngineProcessError, RunHandle, real_stdio, start
from .models import needs_folder
from .pbimport import BenchmarkFile, compare_baseline, load_any, load_compared, parse_pairs
from .measurement import PERCENTILES, ConfigResult, LatencySummary, Throughput, Timeline
from .monitors import Monitor, Reading, StaticMonitor, default_monitors, poll_all
from .paths import config_dir, data_dir, safe_name, session_path, sessions_dir
from .plan import Overrides, build_plan, check_sources, parse_int_list
from .presets import DEFAULT_PRESET, Preset, list_presets, load_preset, user_preset_dir
from .recorder import SessionRecorder
from .repro import Replay, cost_per_million, load_replay
from .session import (
    Session, check_writable, load_session, save_session, session_target, session_text,
    write_session_text,
)
from .specs import RunPlan
from .stats import throughput_avg_peak
from .trial import check_inputs, in_own_thread
from .bench import Prepared, plan_for, prepare
from .streams import Block, ConfigStreams, SampleStream

#: The fields a user may override, as in ``Overrides``.
OVERRIDE_FIELDS = tuple(Overrides.__dataclass_fields__)


def describe_devices() -> list:
    """Every device kind this host could run, and why not where it cannot."""
    from .devices import describe

    return describe()


def check_available(plan: RunPlan) -> None:
    """Refuse, before anything runs, a plan whose device this host cannot run (a CPU-only torch,
    no driver, no such GPU): a ``UserError`` saying why. Imports the device's packages."""
    from .backends import backend_class

    for device in dict.fromkeys(c.device for c in plan.configs):
        options = next(c.device_options for c in plan.configs if c.device == device)
        reason = backend_class(device).unavailable(options, device)
        if reason:
            raise UserError(f"device {device!r}: {reason}")


def plan_with(preset: Preset, overrides: Mapping[str, Any]) -> RunPlan:
    """``build_plan`` with overrides given as a dict of ``Overrides`` field names (the TUI
    keeps the user's changes that way)."""
    unknown = sorted(set(overrides) - set(OVERRIDE_FIELDS))
    if unknown:
        raise UserError(f"unknown setting {unknown[0]!r} (known: {', '.join(OVERRIDE_FIELDS)})")
    return build_plan(preset, Overrides(**{k: v for k, v in overrides.items() if v is not None}))


__all__ = [
    "Bound", "Breach", "Comparison", "Pair", "breaches", "compare_sessions", "config_text",
    "judged_percentiles", "parse_bounds", "unchecked_bounds",
    "BenchmarkFile", "compare_baseline", "load_any", "load_compared", "parse_pairs",
    "Block", "ConfigResult", "ConfigStreams", "ConfigurationError", "DEFAULT_PRESET",
    "EngineProcessError", "ISOLATIONS", "LatencySummary", "PERCENTILES", "Monitor", "OVERRIDE_FIELDS",
    "Overrides", "Preset", "Reading", "RunHandle", "RunPlan", "SampleStream", "Session",
    "SessionRecorder", "StaticMonitor", "Throughput", "Timeline", "UserError", "build_plan",
    "check_available", "check_inputs", "in_own_thread", "describe_devices", "plan_for", "prepare", "Prepared",
    "check_sources", "check_writable", "config_dir",
    "data_dir", "default_monitors",
    "describe_error", "list_presets", "needs_folder", "load_preset", "load_session",
    "parse_int_list", "plan_with", "poll_all", "real_stdio", "safe_name", "save_session",
    "session_path", "session_target", "session_text", "sessions_dir", "start", "throughput_avg_peak",
    "user_preset_dir", "Replay", "cost_per_million", "load_replay", "write_session_text",
]
