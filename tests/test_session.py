"""Session files: the documented schema, a lossless round trip, atomic writes."""

from __future__ import annotations

import json
import os

import pytest

from helpers import fake_plan
from latency_tui.core.engine import Engine
from latency_tui.core.errors import UserError
from latency_tui.core.events import fan_out
from latency_tui.core.session import (
    SCHEMA, Session, SessionRecorder, check_writable, load_session, save_session,
)

RESULT_KEYS = {"config", "status", "error", "samples", "duration_s", "first_inference_ms",
               "warmup_iterations", "latency_ms", "throughput"}
LATENCY_KEYS = {"min", "mean", "std", "p50", "p90", "p95", "p99", "p99.9", "max"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "session.json"
    recorder = SessionRecorder(path)
    Engine(fake_plan(batch_sizes=(1, 2), duration_s=0.2), recorder).run()
    return path, recorder.session


def test_the_file_follows_the_documented_schema(recorded):
    path, _ = recorded
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["schema_version"] == 1
    assert {"tool_version", "created", "host", "preset", "model", "results"} <= set(data)
    assert {"hostname", "platform", "python", "torch", "cpu_model", "logical_cpus"} <= set(data["host"])
    assert {"source", "parameters", "size_mb"} <= set(data["model"])
    assert len(data["results"]) == 2
    for result in data["results"]:
        assert RESULT_KEYS <= set(result)
        assert {"device", "batch_size", "copies", "workers_per_copy"} <= set(result["config"])
        assert set(result["latency_ms"]) == LATENCY_KEYS
        assert set(result["throughput"]) == {"inferences_per_s", "samples_per_s"}
        assert result["status"] == "finished"
    assert data["created"][:4].isdigit() and "T" in data["created"]


def test_round_trip_loses_nothing(recorded, tmp_path):
    path, session = recorded
    loaded = load_session(path)
    assert loaded.to_dict() == session.to_dict()
    again = tmp_path / "again.json"
    save_session(loaded, again)
    assert json.loads(again.read_text()) == json.loads(path.read_text())
    assert loaded.results[0].latency["p50"] == session.results[0].latency["p50"]
    assert loaded.results[0].latency.intervals == session.results[0].latency.intervals


def test_session_is_rewritten_after_every_finished_configuration(tmp_path):
    path = tmp_path / "s.json"
    sizes = []

    def watch(event):
        if path.exists():
            sizes.append(len(json.loads(path.read_text())["results"]))

    Engine(fake_plan(batch_sizes=(1, 2, 3), duration_s=0.1), fan_out(SessionRecorder(path), watch)).run()
    assert sorted(set(sizes)) == [1, 2, 3]


def test_atomic_write_leaves_the_old_file_whole_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    save_session(Session(preset={"name": "first"}), path)
    before = path.read_text()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        save_session(Session(preset={"name": "second"}), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left behind


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"schema": "something-else"}', "not a latency-tui session"),
    ('{"schema": "latency-tui/session", "schema_version": 99, "results": []}', "schema_version 99"),
    ('{"schema": "latency-tui/session", "schema_version": 1, "results": {}}', "must be a list"),
    ('{"schema": "latency-tui/session", "schema_version": 1, "results": [{"config": {}}]}',
     "results[0] is malformed"),
])
def test_loading_a_bad_file_names_it_and_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load_session(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "ok.json") == tmp_path / "ok.json"
    with pytest.raises(UserError, match="is a directory"):
        check_writable(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "missing" / "s.json")
    with pytest.raises(UserError, match="not writable"):
        check_writable("/proc/latency-tui-session.json")  # not even root may create files there
