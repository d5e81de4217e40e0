"""The search on one key: t asks what to look for, runs it on the real engine and shows it as
it proceeds; its outcome is kept in the session with its run."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input

from latency_tui.core.api import load_session
from latency_tui.core.errors import UserError
from latency_tui.tui.app import LatencyApp
from latency_tui.tui.searchscreen import SearchPrompt, SearchScreen, parse_search
from latency_tui.tui.widgets.frontier import SearchPane, split_points

from .conftest import MONITORS, SIZE, finish_run

NONE = {"p99_ms": None, "p50_ms": None, "max_batch": None, "max_memory_mb": None}


@pytest.mark.parametrize("text, changes", [
    ("slo 20", {"search": "slo", **NONE, "p99_ms": 20.0}),
    ("slo p99=20 p50=5", {"search": "slo", **NONE, "p99_ms": 20.0, "p50_ms": 5.0}),
    ("slo 20 mem=8000", {"search": "slo", **NONE, "p99_ms": 20.0, "max_memory_mb": 8000.0}),
    ("  batch   512 ", {"search": "batch", **NONE, "max_batch": 512}),
    ("batch max=64", {"search": "batch", **NONE, "max_batch": 64}),
    ("throughput", {"search": "throughput", **NONE}),
    ("rate 7.5", {"search": "rate", **NONE, "p99_ms": 7.5}),
])
def test_the_prompt_reads_a_kind_and_its_bounds(text, changes):
    assert parse_search(text) == changes


@pytest.mark.parametrize("text", ["", "fastest 20", "slo twenty", "slo p90=3", "slo -5"])
def test_the_prompt_refuses_what_it_cannot_read(text):
    with pytest.raises(UserError, match="^search: "):
        parse_search(text)


def test_the_plot_splits_the_frontier_from_the_other_trials():
    def point(step, p99, rate):
        return {"step": step, "p99_ms": p99, "samples_per_s": rate}

    outcome = {"tried": [point(0, 1.0, 100.0), point(1, 3.0, 90.0), point(2, 2.0, 300.0),
                         {"step": 3, "p99_ms": None, "samples_per_s": None}],
               "frontier": [point(2, 2.0, 300.0), point(0, 1.0, 100.0)],
               "best": point(2, 2.0, 300.0)}
    frontier, others, best = split_points(outcome)
    assert frontier == [(1.0, 100.0), (2.0, 300.0)] and others == [(3.0, 90.0)]
    assert best == [(2.0, 300.0)]


async def wait_for(predicate, timeout=60.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_t_runs_a_search_under_a_p99_bound_and_shows_it(write_preset, tmp_path):
    preset = write_preset("""
        name = "fake-search"
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        batch_sizes = [1, 2, 4]
        duration_s = 0.8
        [device]
        latency_ms = 0.2
        mode = "sleep"
        [warmup]
        min_iterations = 3
        max_iterations = 30
        window = 5
        max_s = 1.0
    """)
    app = LatencyApp(str(preset), monitors=MONITORS, data_dir=tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        assert isinstance(app.screen, SearchPrompt)
        field = app.screen.query_one(Input)
        assert field.value == "slo 20"  # prefilled
        field.value = "slo 500"
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, SearchScreen))
        await wait_for(lambda: app.runs.handle is not None)
        await finish_run(pilot)
        outcome = app.live_run.search
        assert outcome["search"] == "slo" and outcome["done"], outcome
        # Sleep-mode latency does not grow with the batch: the largest batch gives the most.
        # (Some 3,000 samples each: enough for p99's interval, which the verdict needs.)
        assert (outcome["best"] or {}).get("batch") == 4, outcome["summary"]
        assert [p["verdict"] for p in outcome["tried"]] == ["meets"] * 3
        app.screen.show_outcome()
        await pilot.pause()
        answer = str(app.screen.query_one(SearchPane).query_one("#search-answer").render())
        assert "best: batch 4" in answer
        await pilot.press("escape")
        assert not isinstance(app.screen, SearchScreen)
        await pilot.press("t")  # between runs: a new search, prefilled with this one
        assert isinstance(app.screen, SearchPrompt)
        assert app.screen.query_one(Input).value == "slo 500"
        await pilot.press("escape")
        session = load_session(app.sessions.path)
        assert [r.config.batch_size for r in session.results] == [1, 2, 4]
        assert session.runs[-1]["search"]["best"]["batch"] == 4


async def test_t_during_a_sweep_says_why_it_cannot_start_a_search(make_app):
    from .conftest import wait_paused
    from .test_app import notices

    app = make_app(engine={"pause_at": (0, 1)})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await wait_paused(pilot)
        await pilot.press("t")
        assert not isinstance(app.screen, (SearchPrompt, SearchScreen))
        assert notices(app, "warning")[-1].endswith("stop the run first (r stops it)")
