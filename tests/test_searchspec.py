"""The search a plan asks for: the spec checked field by field, and its outcome as people read
it (the CLI's table and the TUI's pane share these views)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from latency_tui.core.errors import UserError
from latency_tui.core.searchspec import SearchSpec, check_search, search_from_table
from latency_tui.tui.cli import main
from latency_tui.tui.searchview import answer_lines, pruned_lines, trials_table

WHERE = "p.toml"


@pytest.mark.parametrize("table, message", [
    ({}, "search.kind is required"),
    ({"kind": "fastest"}, "'fastest' is not one of batch, throughput, slo"),
    ({"kind": 3}, "search.kind must be a string"),
    ({"kind": "slo"}, "needs a p99 bound"),
    ({"kind": "slo", "p99_ms": 0}, "search.p99_ms: must be milliseconds above 0"),
    ({"kind": "slo", "p99_ms": True}, "must not be true or false"),
    ({"kind": "batch", "p99_ms": 20}, "latency bounds belong to the slo and rate searches"),
    ({"kind": "rate", "p99_ms": 20, "p50_ms": 1}, "the rate search takes a p99 bound only"),
    ({"kind": "batch", "max_batch": 0}, "search.max_batch: must be a whole number"),
    ({"kind": "batch", "max_batch": 2 ** 21}, "search.max_batch: must be a whole number"),
    ({"kind": "batch", "max_batch": 2.5}, "search.max_batch: must be a whole number"),
    ({"kind": "throughput", "min_gain": 5}, "search.min_gain: must be a fraction"),
    ({"kind": "throughput", "max_copies": 0}, "search.max_copies: must be a whole number"),
    ({"kind": "batch", "p90_ms": 3}, "search.p90_ms is not a known field"),
    ({"kind": "slo", "p99_ms": 5, "max_memory_mb": 0}, "search.max_memory_mb: must be megabytes"),
    ({"kind": "slo", "p99_ms": 5, "max_memory_mb": "8G"}, "must be megabytes above 0"),
    ({"kind": "batch", "max_memory_mb": 8000}, "the memory bound belongs to the slo search"),
])
def test_a_bad_search_table_is_one_line_naming_the_field(table, message):
    with pytest.raises(UserError) as caught:
        search_from_table(table, WHERE)
    assert message in str(caught.value) and str(caught.value).startswith(WHERE)


def test_a_good_search_table_reads_as_its_spec():
    spec = search_from_table({"kind": "slo", "p99_ms": 20, "p50_ms": 5.5}, WHERE)
    assert spec == SearchSpec("slo", p99_ms=20, p50_ms=5.5)
    assert search_from_table({"kind": "batch", "max_batch": 512.0}, WHERE).max_batch == 512
    assert spec.to_dict() == {"kind": "slo", "p99_ms": 20, "p50_ms": 5.5, "max_batch": 4096}


def test_flags_are_named_as_the_user_wrote_them():
    with pytest.raises(UserError, match="^--p99-ms: the slo search needs a p99 bound"):
        check_search(SearchSpec("slo"), {"p99_ms": "--p99-ms"})


def slo_outcome():
    point = {"step": 0, "phase": "grid", "batch": 1, "copies": 1, "workers": 1,
             "status": "finished", "error_kind": None, "samples_per_s": 1000.0, "p50_ms": 1.0,
             "p99_ms": 2.0, "verdict": "meets", "why": "p99 <= 5", "p99_ci": [1.9, 2.2]}
    second = dict(point, step=1, batch=2, samples_per_s=1500.0, p99_ms=4.0, p99_ci=[3.8, 6.0],
                  verdict="uncertain")
    third = dict(point, step=2, batch=4, samples_per_s=None, p50_ms=None, p99_ms=None,
                 status="failed", error_kind="out_of_memory", verdict="error", p99_ci=None)
    return {"search": "slo", "done": True, "stopped_because": "exhausted",
            "summary": "best under p99 <= 5 ms: batch 1 ...", "best": point,
            "tried": [point, second, third], "trials": 3, "budget": 8,
            "frontier": [point, second], "uncertain": [second],
            "pruned": [{"batch": 8, "copies": 1, "workers": 1,
                        "reason": "batch 4 failed to run on 1 x 1: [red]a larger batch[/]"}],
            "verdicts": {"meets": 1, "uncertain": 1, "error": 1}, "notes": [],
            "bounds": {"p99_ms": 5.0, "p50_ms": None}, "confidence": 0.95}


def render(table) -> str:
    console = Console(width=160, record=True)
    console.print(table)
    return console.export_text()


def test_the_trials_table_marks_the_best_and_the_frontier_and_shows_intervals():
    text = render(trials_table(slo_outcome()))
    rows = [line for line in text.splitlines() if "grid" in line]
    assert len(rows) == 3
    assert ">0" in rows[0] and "meets" in rows[0] and "[1.9" in rows[0]
    assert "*1" in rows[1] and "uncertain" in rows[1]
    assert "out_of_memory" in rows[2] and "error" in rows[2]
    assert "Pareto frontier" in text


def test_the_answer_says_what_was_found_and_what_was_pruned_as_text():
    lines = answer_lines(slo_outcome())
    assert lines[1].startswith("best: batch 1, copies 1 x workers 1: 1,000 samples/s")
    assert "1 meets" in lines[2] and "pruned 1" in lines[2] and "frontier 2" in lines[2]
    (pruned,) = pruned_lines(slo_outcome())
    assert "[red]a larger batch[/]" in pruned  # markup in a reason stays text


def test_a_batch_outcome_names_the_largest_batch_that_fits():
    outcome = {"search": "batch", "summary": "s", "best": None, "tried": [],
               "largest_fitting_batch": 37, "largest_fitting_exact": True,
               "first_failure": {"batch": 38, "error_kind": "out_of_memory", "error": "x"}}
    lines = answer_lines(outcome)
    assert lines[1] == "best: none found"
    assert lines[2] == "largest batch that fits: 37 (exact); batch 38 failed (out_of_memory)"


# -- the plan carries the search; the engine and the CLI carry it out ---------------------------

WORKLOADS = Path(__file__).parent / "workloads.py"


def preset_with(search_lines: str):
    from latency_tui.core.presets import parse_preset

    return parse_preset(textwrap.dedent(f"""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 4]
        copies = [1, 2]
        workers = [1]
        duration_s = 0.1
        [device]
        latency_ms = 1.0
        {search_lines}
    """), name="s", path=None, origin="file", where="s.toml")


@pytest.mark.parametrize("lines, overrides, kind, cls", [
    ('[search]\nkind = "batch"\nmax_batch = 64', {}, "batch", "BatchSearch"),
    ('[search]\nkind = "slo"\np99_ms = 5', {}, "slo", "SloSearch"),
    ("", {"search": "throughput"}, "throughput", "ThroughputSearch"),
    ("", {"search": "rate", "p99_ms": 5.0}, "rate", "RateSearch"),
    # A flag's bound on a preset's search replaces that bound only.
    ('[search]\nkind = "slo"\np99_ms = 5', {"p99_ms": 9.0}, "slo", "SloSearch"),
])
def test_the_plan_carries_its_search_and_the_engine_builds_it(lines, overrides, kind, cls):
    from latency_tui.core.plan import Overrides, build_plan
    from latency_tui.core.searchspec import strategy_for

    plan = build_plan(preset_with(lines), Overrides(**overrides))
    assert plan.search.kind == kind and plan.preset["search"]["kind"] == kind
    strategy = strategy_for(plan)
    assert type(strategy).__name__ == cls
    if kind == "slo":
        assert strategy.p99_ms == overrides.get("p99_ms", 5)
        assert strategy.batch_sizes == (1, 4) and strategy.copies == (1, 2)


def test_without_a_search_the_plan_sweeps():
    from latency_tui.core.plan import build_plan

    assert build_plan(preset_with("")).search is None


def test_a_batch_search_from_the_command_line_finds_the_largest_batch_that_fits(
        tmp_path, capsys, isolated_user_dirs):
    target = tmp_path / "s.json"
    code = main(["run", "--model", f"{WORKLOADS}:fails_at_batch_8", "--search", "batch",
                 "--max-batch", "64", "--duration", "0.1", "--json", str(target), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0  # the failing batch is what the search learns from
    assert "largest batch that fits: 7 (exact); batch 8 failed" in out
    assert "batch search" in out
    saved = json.loads(target.read_text())
    results = saved["results"]
    assert [r["config"]["batch_size"] for r in results][:4] == [1, 2, 4, 8]
    assert all(r["trial"]["strategy"] == "batch" for r in results)
    (run,) = saved["runs"]  # the search's outcome is kept with its run
    assert run["search"]["largest_fitting_batch"] == 7 and run["search"]["done"] is True
    assert run["preset"]["search"] == {"kind": "batch", "max_batch": 64}
    assert main(["show", str(target)]) == 0
    assert "largest batch that fits: 7 (exact)" in capsys.readouterr().out


def test_show_survives_a_mangled_search_outcome(tmp_path, capsys, isolated_user_dirs):
    target = tmp_path / "s.json"
    assert main(["run", "--model", "builtin:noop", "--device", "fake", "--search", "batch",
                 "--max-batch", "2", "--duration", "0.05", "--json", str(target),
                 "--quiet"]) == 0
    saved = json.loads(target.read_text())
    saved["runs"][0]["search"]["tried"] = [{"batch": "x"}]
    target.write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["show", str(target)]) == 0
    assert "cannot be read" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--p99-ms", "5"], "--p99-ms: needs --search"),
    (["--search", "slo"], "--p99-ms: the slo search needs a p99 bound"),
    (["--search", "batch", "--p99-ms", "5"], "--p99-ms: latency bounds belong to the slo"),
])
def test_search_flags_that_do_not_fit_are_exit_2(args, message, capsys, isolated_user_dirs):
    assert main(["run", "--model", "builtin:noop", "--device", "fake", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_memory_bound_reaches_the_slo_search_from_a_preset():
    from latency_tui.core.plan import build_plan
    from latency_tui.core.searchspec import strategy_for

    plan = build_plan(preset_with('[search]\nkind = "slo"\np99_ms = 5\nmax_memory_mb = 8000'))
    assert plan.search.max_memory_mb == 8000 and plan.preset["search"]["max_memory_mb"] == 8000
    assert strategy_for(plan).max_memory_mb == 8000


def test_the_memory_flag_on_the_fake_device_leaves_every_trial_uncertain_and_says_why(
        tmp_path, capsys, isolated_user_dirs):
    target = tmp_path / "s.json"
    code = main(["run", "--model", "builtin:noop", "--device", "fake", "--search", "slo",
                 "--p99-ms", "50", "--max-memory-mb", "8000", "--batch-sizes", "1,2",
                 "--duration", "0.1", "--json", str(target), "--quiet"])
    out = capsys.readouterr().out
    assert code != 0  # no trial can be shown to meet a memory bound without a figure
    assert "memory <= 8000 MB" in out and "without a memory figure (uncertain)" in out
    (run,) = json.loads(target.read_text())["runs"]
    assert run["preset"]["search"]["max_memory_mb"] == 8000.0
    assert run["search"]["bounds"]["max_memory_mb"] == 8000.0
    assert all(p["verdict"] == "uncertain" for p in run["search"]["tried"])
    assert "cannot be judged" in run["search"]["tried"][0]["why"]


@pytest.mark.parametrize("args, message", [
    (["--max-memory-mb", "100"], "--max-memory-mb: needs --search"),
    (["--search", "batch", "--max-memory-mb", "100"], "--max-memory-mb: the memory bound "
                                                       "belongs to the slo search"),
])
def test_a_memory_flag_that_does_not_fit_is_exit_2(args, message, capsys, isolated_user_dirs):
    assert main(["run", "--model", "builtin:noop", "--device", "fake", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_trials_table_shows_abandoned_trials_and_the_memory_bound():
    outcome = slo_outcome()
    outcome["bounds"]["max_memory_mb"] = 8000.0
    outcome["abandoned"] = 1
    outcome["tried"][1].update(abandoned_after_s=0.6, verdict="fails", memory_mb=None)
    outcome["tried"][0]["memory_mb"] = 1234.0
    text = render(trials_table(outcome))
    assert "memory MB" in text and "1,234" in text and "abandoned 0.6 s" in text
    lines = answer_lines(outcome)
    assert any("abandoned early 1" in line for line in lines)
    assert "memory bound: peak device memory <= 8000 MB; 1 trial(s) without a memory figure " \
           "(uncertain)" in lines
    assert "memory MB" not in render(trials_table(slo_outcome()))  # no bound, no column
