"""The results table of ``run`` and ``show``: mean +- std and p95 by default within 100
columns, ``--columns`` to pick, a title naming the model with its parameters and size in MB
(10^6 bytes), and ``show`` of several sessions at once."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from latency_tui.core.api import (
    ConfigResult, LatencySummary, Session, Throughput, load_session, save_session,
)
from latency_tui.core.specs import RunConfig
from latency_tui.tui import cli as cli_module
from latency_tui.tui.cli import main
from latency_tui.tui.headless import (
    COLUMNS, DEFAULT_COLUMNS, model_title, parse_columns, results_table,
)

MLP = {"source": "builtin:mlp", "name": "mlp", "parameters": 1_234_567, "size_mb": 4.94}


def result(batch=1, copies=1, ms=12.345, status="finished", error=None, rate=None):
    latency = LatencySummary(
        count=12_345, min=ms * 0.8, mean=ms * 1.01, std=ms * 0.1, max=ms * 3,
        percentiles={"p50": ms, "p90": ms * 1.1, "p95": ms * 1.2, "p99": ms * 1.5,
                     "p99.9": ms * 2})
    details = {"open_loop": {"intended_rate_per_s": rate, "arrivals": "poisson"}} if rate else {}
    return ConfigResult(
        config=RunConfig(device="cpu", batch_size=batch, copies=copies, rate=rate),
        status=status, error=error, samples=12_345, latency=latency,
        throughput=Throughput(copies * 1000 / ms, batch * copies * 1000 / ms), details=details)


def sweep():
    """A typical sweep: batch 1, 8 and 32 on one and two copies, latencies of 12-70 ms."""
    return [result(batch, copies, 12.345 * batch ** 0.5) for batch in (1, 8, 32)
            for copies in (1, 2)]


def render(table, width=100) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(table)
    return console.export_text()


def header(text: str) -> str:
    """The header line: the one just above the rule under it."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    return lines[rule - 1]


def saved(tmp_path, name="s.json", model=MLP, results=None, preset="cpu-mlp") -> Path:
    path = tmp_path / name
    save_session(Session(preset={"name": preset}, model=dict(model),
                         results=sweep() if results is None else results), path)
    return path


def test_the_default_table_has_p95_and_mean_plus_minus_std():
    text = render(results_table(sweep()))
    head = header(text)
    for column in ("batch", "copies", "workers", "inf/s", "samples/s", "p50 ms", "p95 ms",
                   "p99 ms", "mean +- std ms", "status"):
        assert column in head, column
    assert "12.345" in text and "14.814" in text  # p50 and p95 of batch 1
    assert "12.468 +- 1.235" in text  # mean +- std
    assert [c for c in DEFAULT_COLUMNS if c not in COLUMNS] == []


def test_a_typical_sweep_fits_100_columns_with_nothing_cut():
    text = render(results_table(sweep(), title=model_title("cpu-mlp", MLP)))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    assert text.count("finished") == 6
    assert "4.9 MB; MB = 10^6 bytes" in text


def test_an_error_wraps_in_the_status_column_within_the_width():
    rows = sweep()[:2] + [result(8, 1, status="failed", error="ValueError: batch 8 is not "
                                 "supported by this model, whatever the copies and workers")]
    text = render(results_table(rows))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "failed:" in text and "…" not in header(text)


def test_open_loop_adds_the_rate_column_by_default():
    text = render(results_table([result(rate=200.0), result(copies=2, rate=400.0)]), width=160)
    assert "rate" in header(text) and "200/s poisson" in text


def test_columns_pick_those_named_after_the_configuration():
    text = render(results_table(sweep(), columns=parse_columns("p50, P99")))
    assert re.split(r"\s{2,}", header(text).strip()) == ["config", "p50 ms", "p99 ms"]
    assert "batch 8, 2 x 1" in text and "mean" not in text and "14.814" not in text


def test_columns_keep_the_order_given_and_an_identity_column_replaces_config():
    picked = parse_columns("batch,mean,p99.9,max,min,inferences,std,samples")
    assert picked == ("batch", "mean", "p99.9", "max", "min", "inferences")
    text = render(results_table(sweep(), columns=picked))
    assert re.split(r"\s{2,}", header(text).strip()) == [
        "batch", "mean +- std ms", "p99.9 ms", "max ms", "min ms", "inferences"]
    assert "12,345" in text


@pytest.mark.parametrize("text", ["bogus", "p50,p42", "", " , "])
def test_parse_columns_refuses_an_unknown_name_listing_the_known(text):
    with pytest.raises(ValueError) as refused:
        parse_columns(text)
    assert "known: config, device, batch" in str(refused.value)


def test_help_names_every_column():
    help_text = cli_module.COLUMNS_OPTION["help"]
    assert [name for name in COLUMNS if name not in help_text] == []


@pytest.mark.parametrize("command", ["show", "run"])
def test_an_unknown_column_exits_2_naming_it(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--columns", "p50,bogus", *([str(saved(tmp_path))] if command == "show"
                                                    else [])])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --columns: unknown column 'bogus'" in err and "known: config" in err


@pytest.mark.parametrize("model, expected", [
    (MLP, "cpu-mlp: builtin:mlp (mlp, 1.2M parameters, 4.9 MB; MB = 10^6 bytes)"),
    ({"source": "builtin:noop", "name": None, "parameters": None, "size_mb": None},
     "cpu-mlp: builtin:noop"),
    ({}, "cpu-mlp: ?"),
    ({"source": "hf:x", "name": "x", "parameters": 110_000_000, "size_mb": 438.0},
     "cpu-mlp: hf:x (x, 110.0M parameters, 438 MB; MB = 10^6 bytes)"),
    ({"source": "m.py:f", "name": "f", "parameters": 300, "size_mb": 0.0012},
     "cpu-mlp: m.py:f (f, 300 parameters, 0.0012 MB; MB = 10^6 bytes)"),
    ({"source": "s", "name": ["odd"], "parameters": True, "size_mb": 10 ** 400},
     "cpu-mlp: s"),  # a file's odd values are left out, not shown
    ({"source": "s", "parameters": -1, "size_mb": "big"}, "cpu-mlp: s"),
])
def test_the_title_names_the_model_with_its_parameters_and_size(model, expected):
    assert model_title("cpu-mlp", model) == expected


def test_the_title_falls_back_to_the_plans_source():
    assert model_title("p", {"name": None}, "builtin:noop") == "p: builtin:noop"


def test_show_prints_one_table_per_session(tmp_path, capsys):
    first = saved(tmp_path, "a.json")
    second = saved(tmp_path, "b.json", model={"source": "builtin:noop"}, preset="other",
                   results=[result(4, 1, 2.5)])
    assert main(["show", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert out.count("p95 ms") == 2 and out.count("mean +- std ms") == 2
    words = " ".join(out.split())  # a title longer than its table wraps
    assert f"{first}: cpu-mlp: builtin:mlp (mlp, 1.2M parameters, 4.9 MB; MB = 10^6 bytes)" \
        in words
    assert f"{second}: other: builtin:noop" in out
    assert out.index("a.json") < out.index("b.json")
    assert out.count("finished") == 7


def test_show_with_columns(tmp_path, capsys):
    assert main(["show", "--columns", "p50,p99", str(saved(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "p99 ms" in out and "p95 ms" not in out and "status" not in out


@pytest.mark.parametrize("bad", ["missing.json", "broken.json"])
def test_show_refuses_an_unreadable_file_before_printing_any_table(bad, tmp_path, capsys):
    good = saved(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    target = tmp_path / bad
    assert main(["show", str(good), str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(target) in captured.err and captured.err.count("\n") == 1


def test_run_prints_the_columns_picked(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert main(["run", "--model", "builtin:noop", "--device", "fake", "--duration", "0.2",
                 "--batch-sizes", "1,2", "--quiet", "--json", str(path),
                 "--columns", "p50,p99"]) == 0
    out = capsys.readouterr().out
    assert re.split(r"\s{2,}", header(out).strip()) == ["config", "p50 ms", "p99 ms"]
    assert "batch 2, 1 x 1" in out and "cpu-mlp: builtin:noop (noop)" in out  # no parameters
    assert len(load_session(path).results) == 2
    assert json.loads(path.read_text())["model"]["source"] == "builtin:noop"


def test_run_prints_the_default_table_with_the_models_facts(tmp_path, capsys, monkeypatch):
    recorder = type("Recorder", (), {})()
    recorder.session = Session(model=dict(MLP), results=sweep())
    recorder.save_error = None
    plan = type("Plan", (), {"name": "cpu-mlp"})()
    plan.model = type("Model", (), {"source": "builtin:mlp"})()
    assert cli_module._report(plan, recorder, tmp_path / "s.json", 0) == 0
    out = capsys.readouterr().out
    assert "cpu-mlp: builtin:mlp (mlp, 1.2M parameters, 4.9 MB; MB = 10^6 bytes)" in out
    assert "p95 ms" in header(out) and "mean +- std ms" in header(out)
