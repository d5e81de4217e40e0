"""Session files: the documented schema, a lossless round trip, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers import fake_plan
from latency_tui.core.engine import Engine
from latency_tui.core.errors import UserError
from latency_tui.core.events import fan_out
from latency_tui.core.recorder import SessionRecorder
from latency_tui.core.session import (
    SCHEMA, Session, check_writable, load_session, save_session,
)

RESULT_KEYS = {"config", "status", "error", "error_kind", "traceback", "samples", "duration_s",
               "first_inference_ms", "warmup_iterations", "warmup_stable", "latency_ms",
               "device_latency_ms", "throughput", "stages_ms", "timeline", "utilisation", "trial",
               "warnings", "details"}
LATENCY_KEYS = {"count", "min", "mean", "std", "p50", "p90", "p95", "p99", "p99.9", "max", "ci",
                "confidence", "exact", "relative_error", "warnings"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "session.json"
    recorder = SessionRecorder(path)
    Engine(fake_plan(batch_sizes=(1, 2), duration_s=0.2), recorder).run()
    return path, recorder.session


def test_the_file_follows_the_documented_schema(recorded):
    path, _ = recorded
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data["schema_version"] == 2
    assert {"tool_version", "created", "host", "preset", "model", "results"} <= set(data)
    assert {"hostname", "platform", "python", "torch", "cpu_model", "logical_cpus"} <= set(data["host"])
    assert {"source", "parameters", "size_mb"} <= set(data["model"])
    assert len(data["results"]) == 2
    for result in data["results"]:
        assert RESULT_KEYS <= set(result)
        assert {"device", "batch_size", "copies", "workers_per_copy"} <= set(result["config"])
        assert set(result["latency_ms"]) == LATENCY_KEYS
        assert set(result["throughput"]) == {"inferences_per_s", "samples_per_s",
                                             "avg_samples_per_s", "peak_samples_per_s"}
        assert set(result["timeline"]) == {"bucket_s", "relative_error", "inferences", "p50_ms",
                                           "p99_ms", "max_ms"}
        assert sum(result["timeline"]["inferences"]) == result["samples"]
        assert result["status"] == "finished" and result["error_kind"] is None
        assert result["trial"] == {"strategy": "sweep", "step": data["results"].index(result),
                                   "run": 1}
    assert data["created"][:4].isdigit() and "T" in data["created"]
    (run,) = data["runs"]
    assert run["id"] == 1 and run["configurations"] == 2 and run["preset"] == data["preset"]


def test_each_run_keeps_its_plan_and_every_row_names_its_run(tmp_path):
    """Two runs recorded into one session (as the TUI does for a batch sweep, then a copies
    sweep): each run's plan is kept, and each result says which run it came from."""
    path = tmp_path / "s.json"
    recorder = SessionRecorder(path)
    assert recorder.next_run_id == 1
    Engine(fake_plan(batch_sizes=(1, 2), duration_s=0.1), recorder).run()
    assert recorder.next_run_id == 2
    Engine(fake_plan(copies=(1, 2), duration_s=0.1), recorder).run()
    session = load_session(path)
    assert [run["id"] for run in session.runs] == [1, 2]
    assert [r["preset"]["run"]["batch_sizes"] for r in session.runs] == [[1, 2], [1]]
    assert [r["preset"]["run"]["copies"] for r in session.runs] == [[1], [1, 2]]
    assert [session.run_of(r) for r in session.results] == [1, 1, 2, 2]
    assert [(r.config.batch_size, r.config.copies) for r in session.results] == [
        (1, 1), (2, 1), (1, 1), (1, 2)]
    assert session == recorder.session


def test_files_without_run_ids_still_load(tmp_path):
    """A file written before run ids: no "runs", no trial["run"]."""
    path = tmp_path / "old.json"
    recorder = SessionRecorder(path)
    Engine(fake_plan(duration_s=0.1), recorder).run()
    data = json.loads(path.read_text())
    del data["runs"]
    for result in data["results"]:
        del result["trial"]["run"]
    path.write_text(json.dumps(data))
    session = load_session(path)
    assert session.runs == [] and session.run_of(session.results[0]) is None
    data["runs"] = [{"id": 0}]
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"runs\[0\]\.id: must be at least 1"):
        load_session(path)


def test_round_trip_loses_nothing(recorded, tmp_path):
    """Loaded equals saved as objects: every summary with its intervals and warnings, the
    timeline, the stages (the old test compared only dicts, and stage intervals and the
    summary's warnings vanished on reload)."""
    path, session = recorded
    loaded = load_session(path)
    assert loaded == session
    again = tmp_path / "again.json"
    save_session(loaded, again)
    assert json.loads(again.read_text()) == json.loads(path.read_text())


def test_round_trip_keeps_stage_intervals_warnings_and_failures(tmp_path):
    from latency_tui.core.measurement import ConfigResult
    from latency_tui.core.specs import RunConfig
    from latency_tui.core.stats import summarize

    summary = summarize(np.arange(1, 21) * 1000)  # 20 samples: tail warnings, some intervals
    assert summary.warnings and summary.intervals
    results = [
        ConfigResult(RunConfig(device="fake", batch_size=2), "finished", samples=20,
                     duration_s=1.5, latency=summary, stages={"end_to_end": summary,
                                                              "preprocess": summary},
                     warnings=("warm-up did not stabilise",), details={"threads": [1, 2]}),
        ConfigResult(RunConfig(), "failed", error="RuntimeError: boom", error_kind="error",
                     traceback="Traceback (most recent call last):\n  ...\nRuntimeError: boom\n"),
    ]
    session = Session(preset={"name": "x"}, results=results)
    save_session(session, tmp_path / "s.json")
    loaded = load_session(tmp_path / "s.json")
    assert loaded == session
    assert loaded.results[0].stages["end_to_end"].intervals == summary.intervals
    assert loaded.results[0].latency.warnings == summary.warnings


def test_version_1_files_are_still_read(tmp_path):
    v1 = {
        "schema": SCHEMA, "schema_version": 1, "tool_version": "0.1.0", "created": "2026-11-22",
        "host": {"hostname": "h"}, "preset": {"name": "cpu-mlp"}, "model": {"source": "builtin:mlp"},
        "results": [{
            "config": {"device": "cpu", "batch_size": 8, "copies": 1, "workers_per_copy": 1,
                       "copy_mode": "thread", "threads_per_copy": None, "device_options": {}},
            "status": "finished", "error": None, "samples": 1000, "duration_s": 2.0,
            "first_inference_ms": 1.1, "warmup_iterations": 50, "warmup_stable": True,
            "latency_ms": {"min": 0.05, "mean": 0.06, "std": 0.01, "p50": 0.05, "p90": 0.08,
                           "p95": 0.09, "p99": 0.11, "p99.9": 0.2, "max": 1.2},
            "latency_ci_ms": {"p50": [0.05, 0.05], "p99": [0.1, 0.12]}, "confidence": 0.95,
            "latency_exact": True, "percentile_relative_error": 0.0,
            "throughput": {"inferences_per_s": 500.0, "samples_per_s": 4000.0},
            "stages_ms": {"end_to_end": {"min": 0.1, "mean": 0.2, "std": 0.01, "p50": 0.2,
                                         "p90": 0.3, "p95": 0.3, "p99": 0.4, "p99.9": 0.5,
                                         "max": 0.6}},
            "warnings": ["p99.9 rests on 1 sample above it"], "details": {"threads_per_copy": 2},
        }],
    }
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1))
    (result,) = load_session(path).results
    assert result.config.batch_size == 8 and result.latency["p99"] == 0.11
    assert result.latency.intervals == {"p50": (0.05, 0.05), "p99": (0.1, 0.12)}
    assert result.stages["end_to_end"]["p50"] == 0.2
    assert result.warnings == ("p99.9 rests on 1 sample above it",)
    assert result.throughput.samples_per_s == 4000.0 and result.timeline is None


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
    ('{"schema": "latency-tui/session", "schema_version": 2, "results": {}}', "must be a list"),
    ('{"schema": "latency-tui/session", "schema_version": 2, "results": [{"config": {}}]}',
     "results[0].status: is missing"),
    ('{"schema": "latency-tui/session", "schema_version": 2, "results": [{"status": "finished",'
     ' "config": {"device": "cpu", "batch_size": "8", "copies": 1, "workers_per_copy": 1}}]}',
     "results[0].config.batch_size: must be an integer, not '8'"),
    ('{"schema": "latency-tui/session", "schema_version": 2, "results": [], "host": [1]}',
     "host: must be an object"),
    ('{"schema": "latency-tui/session", "schema_version": 2, "results": [], "x": NaN}',
     "not valid JSON"),
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
    with pytest.raises(UserError, match="not a regular file"):
        check_writable("/dev/null")  # as root, the device node would have been replaced


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert check_writable(link) == real
    save_session(Session(preset={"name": "linked"}), link)
    assert link.is_symlink() and load_session(real).preset == {"name": "linked"}


def _bounded(call, timeout=10.0):
    """``call()`` in a helper thread: what it raised or returned, failing (never hanging) when
    it has not ended within ``timeout`` s (a FIFO read waits for a writer for ever)."""
    import threading

    outcome = []

    def target():
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    helper = threading.Thread(target=target, daemon=True)
    helper.start()
    helper.join(timeout)
    assert not helper.is_alive(), f"still reading after {timeout:g} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_as_a_session_is_refused_at_once_not_read(tmp_path):
    fifo = tmp_path / "s.json"
    os.mkfifo(fifo)
    raised = _bounded(lambda: load_session(fifo))
    assert isinstance(raised, UserError), raised
    assert "not a regular file" in str(raised) and str(fifo) in str(raised)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_device_as_a_session_is_refused_not_read_into_memory():
    raised = _bounded(lambda: load_session("/dev/zero"))
    assert isinstance(raised, UserError) and "/dev/zero: is not a regular file" in str(raised)


def test_a_directory_or_a_symlink_loop_as_a_session_is_one_line(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    for path, words in ((tmp_path, "is a directory"), (loop, "symbolic links")):
        with pytest.raises(UserError) as caught:
            load_session(path)
        assert words in str(caught.value) and str(path) in str(caught.value)


def test_json_pointing_at_a_symlink_loop_is_refused_with_one_line(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    with pytest.raises(UserError, match="symbolic link loop|symbolic links") as caught:
        check_writable(loop)
    assert str(loop) in str(caught.value) and "\n" not in str(caught.value)


def test_a_session_larger_than_the_bound_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    import latency_tui.core.session as session_module

    monkeypatch.setattr(session_module, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.json"
    big.write_text(" " * 5000)
    with pytest.raises(UserError, match="larger than"):
        load_session(big)


UTILISATION = {"cpu": {"mean": 12.5, "max": 40.0, "samples": 3},
               "gpu0": {"mean": 50.0, "max": 90.0, "samples": 3,
                        "memory_mb": {"mean": 100.0, "max": 120.0}},
               "nc0": {"absent": "no neuron-monitor"}}


@pytest.mark.parametrize("utilisation, message", [
    ({"cpu": "x"}, "utilisation.cpu: must be an object, not 'x'"),
    ({"cpu": {"mean": "x"}}, "utilisation.cpu.mean: must be a finite number"),
    ({"cpu": {"samples": 2.5}}, "utilisation.cpu.samples: must be an integer"),
    ({"cpu": {"samples": -1}}, "utilisation.cpu.samples: must be at least 0"),
    ({"cpu": {"absent": 3}}, "utilisation.cpu.absent: must be a string"),
    ({"gpu0": {"memory_mb": {"mean": [1]}}}, "utilisation.gpu0.memory_mb.mean: must be a finite"),
    ({"cpu": {"mean": True}}, "utilisation.cpu.mean: must be a finite number, not true"),
    ([1, 2], "utilisation: must be an object"),
])
def test_utilisation_entries_are_type_checked_on_load(tmp_path, utilisation, message):
    result = {"status": "finished", "utilisation": utilisation,
              "config": {"device": "cpu", "batch_size": 1, "copies": 1, "workers_per_copy": 1}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema": SCHEMA, "schema_version": 2, "results": [result]}))
    with pytest.raises(UserError) as caught:
        load_session(path)
    assert message in str(caught.value)
    result["utilisation"] = UTILISATION  # as the monitors write it: read faithfully
    path.write_text(json.dumps({"schema": SCHEMA, "schema_version": 2, "results": [result]}))
    assert load_session(path).results[0].utilisation == UTILISATION
