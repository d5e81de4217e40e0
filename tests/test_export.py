"""``latency-tui export``: a session as NeuronPerf's CSV columns, a Markdown table and JSON rows,
figures taken from the session as it was saved (a missing figure is empty, never 0)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from latency_tui.core.api import load_session
from latency_tui.tui.cli import main
from latency_tui.tui.export import NEURONPERF_COLUMNS, OWN_COLUMNS

WORKLOADS = Path(__file__).parent / "workloads.py"


@pytest.fixture
def session_file(tmp_path, isolated_user_dirs, capsys):
    path = tmp_path / "s.json"
    code = main(["run", "--model", f"{WORKLOADS}:fails_at_batch_8", "--batch-sizes", "1,8",
                 "--duration", "1.2", "--json", str(path), "--quiet"])
    assert code == 1  # batch 8 fails; batch 1 finishes
    capsys.readouterr()
    return path


def export(capsys, *args):
    assert main(["export", *args]) == 0
    return capsys.readouterr().out


def test_csv_has_neuronperfs_columns_in_order_and_the_sessions_figures(session_file, capsys):
    rows = list(csv.DictReader(io.StringIO(export(capsys, str(session_file)))))
    header = next(csv.reader(io.StringIO(export(capsys, str(session_file)))))
    assert tuple(header) == NEURONPERF_COLUMNS + OWN_COLUMNS
    saved = load_session(session_file).results
    first, failed = rows
    result = saved[0]
    assert (first["n_models"], first["workers_per_model"], first["batch_size"]) == ("1", "1", "1")
    assert float(first["latency_ms_p0"]) == pytest.approx(result.latency.min)
    assert float(first["latency_ms_p99"]) == pytest.approx(result.latency["p99"])
    assert float(first["latency_ms_p100"]) == pytest.approx(result.latency.max)
    assert float(first["throughput_avg"]) == pytest.approx(result.throughput.avg_samples_per_s)
    assert float(first["throughput_peak"]) == pytest.approx(result.throughput.peak_samples_per_s)
    assert int(first["total_infs"]) == result.samples and first["status"] == "finished"
    assert first["cost_per_1m_inf"] == "" and first["cpu_percent_p50"] == ""  # unknown: empty
    assert failed["status"] == "failed" and failed["latency_ms_p50"] == ""
    assert failed["batch_size"] == "8" and failed["run"] == "1"


def test_json_rows_are_the_csv_rows(session_file, capsys):
    rows = json.loads(export(capsys, str(session_file), "--format", "json"))
    assert [r["batch_size"] for r in rows] == [1, 8]
    assert rows[1]["latency_ms_p50"] is None and rows[1]["error_kind"] == "error"
    assert list(rows[0]) == list(NEURONPERF_COLUMNS + OWN_COLUMNS)


def test_markdown_is_one_table_for_a_pull_request(session_file, capsys):
    lines = export(capsys, str(session_file), "--format", "markdown").splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0].startswith("| batch | copies | workers | samples/s | p50 ms")
    assert len(table) == 4 and table[3].endswith("| failed (error) |")


def test_a_model_name_with_a_pipe_does_not_break_the_markdown_table(session_file, capsys):
    data = json.loads(session_file.read_text())
    data["model"]["name"] = "a|b [red]x[/]"
    data["preset"]["name"] = "p|q"
    session_file.write_text(json.dumps(data))
    lines = export(capsys, str(session_file), "--format", "markdown").splitlines()
    assert lines[0].startswith("**p\\|q:")
    assert all(line.count("|") - line.count("\\|") == 10 for line in lines if line[:1] == "|")


def test_out_writes_a_file_and_refuses_a_device(session_file, tmp_path, capsys):
    target = tmp_path / "out.csv"
    assert main(["export", str(session_file), "--out", str(target)]) == 0
    assert target.read_text().startswith("model_name,n_models,")
    assert main(["export", str(session_file), "--out", "/dev/null"]) == 2
    assert "--out /dev/null" in capsys.readouterr().err


def test_exporting_what_is_not_a_session_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["export", str(bad)]) == 2
    assert "not a latency-tui session" in capsys.readouterr().err
