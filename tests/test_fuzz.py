"""Fuzzed presets and session files (Hypothesis, seeded, bounded in time): whatever the input,
reading it is either a result or a one-line ``UserError``, never a traceback, never a hang,
and nothing is written."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latency_tui.core.errors import UserError
from latency_tui.core.plan import build_plan
from latency_tui.core.presets import parse_preset
from latency_tui.core.session import Session, load_session

FUZZ = settings(max_examples=1000, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# -- values of any type, as TOML and JSON carry them -------------------------------------------
NASTY_TEXT = st.sampled_from([
    "", " ", "[/bold]", "[bold red]x", "\x1b[2J", "\x00", "\u202e", "a" * 300, "ünïcödé", "../..",
    "/dev/null", "nan", "1e999", "-1", "0", "builtin:noop", "hf:", "cpu", "fake", "thread",
])
SCALARS = st.one_of(
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), NASTY_TEXT, st.text(max_size=20),
)
EDGES = st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, -0.0, 2 ** 63, -(2 ** 63), 1e308,
                         5e-324, True, False, None, "1", "", [], {}])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: the same escapes
    if isinstance(value, list):  # TOML has no null: a None is left out
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()
                           if v is not None) + "}"


def toml_table(name: str, table: dict) -> str:
    lines = [f"[{name}]"] if name else []
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines)


# -- presets ------------------------------------------------------------------------------------
SOURCES = st.sampled_from([
    "builtin:mlp", "builtin:noop", "builtin:bert", "builtin:nope", "hf:", "hf:some/model",
    "torchscript:/nonexistent/model.pt", "model.pt", "no_such_module_for_fuzz:attr",
    "/nonexistent/file.py:make", "", "[/bold]", "no colon at all",
]) | NASTY_TEXT
SMALL_INTS = st.lists(st.integers(min_value=-3, max_value=2 ** 64), min_size=0, max_size=4)


def paths(value, prefix=()):
    """Every (path, value) inside a JSON document."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths(item, prefix + (i,))


def valid_preset() -> dict:
    return {
        "name": "fuzz", "description": "a valid preset, mutated",
        "model": {"source": "builtin:noop", "options": {}},
        "inputs": {"tensors": [{"name": "x", "shape": [4], "dtype": "float32", "low": 0,
                                "high": 2}], "seed": 0},
        "run": {"device": "fake", "batch_sizes": [1, 2], "copies": [1], "workers": [1, 2],
                "copy_mode": "thread", "threads_per_copy": 1, "duration_s": 1.0,
                "samples": 100, "sample_cap": 1000, "timeout_s": 5.0},
        "device": {"latency_ms": 0.5, "jitter_ms": 0.1, "mode": "sleep", "seed": 1},
        "warmup": {"min_iterations": 3, "max_iterations": 50, "min_s": 0.0, "max_s": 1.0,
                   "window": 5, "tolerance": 0.05, "first_timeout_s": 60.0},
    }


PRESET_PATHS = [p for p, _ in paths(valid_preset()) if p]
REPLACEMENTS = st.one_of(EDGES, VALUES, SOURCES, SMALL_INTS)


def to_toml(document: dict) -> str:
    top = {k: v for k, v in document.items() if not isinstance(v, dict) and v is not None}
    parts = [toml_table("", top)] if top else []
    for name, table in document.items():
        if isinstance(table, dict):
            parts.append(toml_table(name, table))
    return "\n".join(parts) + "\n"


@st.composite
def presets(draw) -> str:
    """A valid preset with one to three of its fields replaced, removed or added to (and now
    and then the text cut short or garbled), so that most fuzzed presets are nearly right."""
    document = json.loads(json.dumps(valid_preset()))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PRESET_PATHS))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.integers(0, 4))
            if action == 0 and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == 1 and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=6))] = draw(VALUES)
            else:
                parent[path[-1]] = draw(REPLACEMENTS)
        except (KeyError, IndexError, TypeError):
            continue
    text = to_toml(document)
    if draw(st.integers(0, 19)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=5))
    return text


@FUZZ
@given(presets())
def test_any_preset_plans_or_is_refused_in_one_line(tmp_path_factory, text):
    folder = tmp_path_factory.getbasetemp()
    before = set(os.listdir(folder))
    try:
        preset = parse_preset(text, name="fuzz", path=None, origin="file", where="fuzz.toml")
        plan = build_plan(preset)
    except UserError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
    else:
        json.dumps(plan.preset, allow_nan=False)  # what the session will record can be saved
        assert plan.configs
    assert set(os.listdir(folder)) == before


# -- sessions -----------------------------------------------------------------------------------
def valid_session() -> dict:
    summary = {"count": 100, "min": 0.1, "mean": 0.2, "std": 0.01, "p50": 0.2, "p90": 0.25,
               "p95": 0.27, "p99": 0.3, "p99.9": 0.4, "max": 0.5,
               "ci": {"p50": [0.19, 0.21], "p99": [0.28, 0.33]}, "confidence": 0.95,
               "exact": True, "relative_error": 0.0, "warnings": ["few samples"]}
    return {
        "schema": "latency-tui/session", "schema_version": 2, "tool_version": "0.1.0",
        "created": "2026-12-01T10:00:00+00:00", "host": {"hostname": "h"},
        "preset": {"name": "p"}, "model": {"source": "builtin:mlp"},
        "results": [{
            "config": {"device": "cpu", "batch_size": 1, "copies": 1, "workers_per_copy": 1,
                       "copy_mode": "thread", "threads_per_copy": None, "device_options": {}},
            "status": "finished", "error": None, "error_kind": None, "traceback": None,
            "samples": 100, "duration_s": 1.0, "first_inference_ms": 3.0,
            "warmup_iterations": 20, "warmup_stable": True, "latency_ms": summary,
            "device_latency_ms": None,
            "throughput": {"inferences_per_s": 100.0, "samples_per_s": 100.0},
            "stages_ms": {"end_to_end": summary},
            "timeline": {"bucket_s": 1.0, "relative_error": 0.005, "inferences": [100],
                         "p50_ms": [0.2], "p99_ms": [0.3], "max_ms": [0.5]},
            "utilisation": {}, "trial": {}, "warnings": [], "details": {},
        }],
    }


ALL_PATHS = [p for p, _ in paths(valid_session()) if p]


@st.composite
def sessions(draw) -> dict:
    document = json.loads(json.dumps(valid_session()))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            action = draw(st.integers(0, 3))
            if action == 0 and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(st.one_of(EDGES, VALUES))
        except (KeyError, IndexError, TypeError):
            continue
    return document


def render(session: Session) -> str:
    from rich.console import Console

    from latency_tui.tui.headless import results_table

    console = Console(file=io.StringIO(), width=160)
    console.print(results_table(session.results, title=f"{session.preset.get('name')}"))
    return console.file.getvalue()


@FUZZ
@given(sessions())
def test_any_session_reads_faithfully_or_is_refused_in_one_line(document):
    try:
        text = json.dumps(document)
    except ValueError:
        return
    try:
        session = Session.from_dict(json.loads(text), where="fuzz.json")
    except UserError as exc:
        assert str(exc).startswith("fuzz.json")
        return
    assert "\x1b" not in render(session)
    for result in session.results:  # what was accepted has the types it claims
        assert isinstance(result.samples, int) and result.samples >= 0
        assert result.latency is None or all(
            isinstance(v, float) and math.isfinite(v) for v in result.latency.values().values())


RAW = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"schema": "latency-tui/session", "x": NaN}',
                     b'{"a": 1e999}', b"\xff\xfe{}", b'{"schema": "latency-tui/session", '
                     b'"schema_version": 2, "results": [' + b"{}," * 100 + b"{}]}"]),
)


@settings(max_examples=300, deadline=2000, derandomize=True, database=None)
@given(RAW)
def test_any_file_given_to_show_is_a_session_or_one_line(tmp_path_factory, raw):
    path = Path(tmp_path_factory.getbasetemp()) / "fuzzed-session.json"
    path.write_bytes(raw)
    try:
        load_session(path)
    except UserError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize("text", ["x = nan", "[run]\nduration_s = inf", "[device]\nx = nan"])
def test_non_finite_numbers_anywhere_in_a_preset_are_refused(text):
    with pytest.raises(UserError, match="finite number"):
        parse_preset(text, name="x", path=None, origin="file", where="x.toml")
