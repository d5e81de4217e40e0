"""Sessions side by side in the TUI (issue 13, item 1): marked in the session browser (space),
compared on ``c`` with the first marked as the baseline: one row per configuration matched by
config with the verdicts and the changes of ``core.compare``, what only one session has, the
overlaid histograms of the highlighted row naming every session, and the notices for too few
marked sessions and for a file that cannot be read."""

from __future__ import annotations

import asyncio
import os

import numpy as np
from textual.widgets import DataTable, Input, OptionList

from latency_tui.core import samplestore
from latency_tui.core.measurement import ConfigResult
from latency_tui.core.session import Session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.core.stats import summarize, throughput
from latency_tui.tui.browser import SessionBrowser
from latency_tui.tui.comparemodel import Samples, overlay
from latency_tui.tui.comparescreen import CompareScreen
from latency_tui.tui.widgets.notices import NoticesPane
from latency_tui.tui.widgets.overlay import OverlaidHistograms

from .conftest import SIZE, wait_described

N = 20_000


def result(batch: int, scale: float, seed: int, stored: bool = True) -> ConfigResult:
    rng = np.random.default_rng(seed)
    values = np.sort((1e6 * scale * np.exp(rng.normal(0.0, 0.2, N))).astype(np.int64))
    config = RunConfig("fake", batch_size=batch)
    return ConfigResult(config, "finished", samples=N, duration_s=10.0,
                        latency=summarize(values, presorted=True),
                        throughput=throughput(N, 10.0, batch, None),
                        latency_samples=samplestore.store_sorted(values) if stored else None)


def write(folder, name, results, age):
    """A session file, ``age`` seconds old (the browser lists the newest first)."""
    path = folder / name
    save_session(Session(preset={"name": name}, results=results), path)
    when = 1_700_000_000 - age
    os.utime(path, (when, when))
    return path


def sessions(app):
    """base.json (batch 1, 2, 4), new.json (batch 1 10 % slower, 2 the same, 8),
    old.json (batch 1 and 2, no samples stored), other.json (batch 16), broken.json (not a
    session); in the app's sessions folder, listed in that order."""
    folder = app.sessions.directory
    folder.mkdir(parents=True, exist_ok=True)
    write(folder, "base.json", [result(1, 1.0, 1), result(2, 1.0, 2), result(4, 1.0, 3)], 0)
    write(folder, "new.json", [result(8, 1.0, 4), result(2, 1.0, 5), result(1, 1.1, 6)], 10)
    write(folder, "old.json", [result(1, 1.0, 7, False), result(2, 1.0, 8, False)], 20)
    write(folder, "other.json", [result(16, 1.0, 9)], 40)
    broken = folder / "broken.json"
    broken.write_text("{}", encoding="utf-8")
    os.utime(broken, (1_700_000_000 - 30,) * 2)
    return folder


async def open_browser(pilot):
    await pilot.press("o")
    await pilot.pause()
    browser = pilot.app.screen
    assert isinstance(browser, SessionBrowser)
    await wait_described(pilot, browser)
    browser.query_one(OptionList).focus()
    await pilot.pause()
    return browser


async def mark(pilot, browser, *names):
    options = browser.query_one(OptionList)
    for name in names:
        options.highlighted = [p.name for p in browser.paths].index(name)
        await pilot.press("space")
    await pilot.pause()


async def compared(pilot) -> CompareScreen:
    screen = pilot.app.screen
    assert isinstance(screen, CompareScreen)
    for _ in range(500):
        if screen.done:
            break
        await asyncio.sleep(0.01)
    await pilot.pause()
    assert screen.done and not screen.problem
    return screen


def row_cells(screen, index):
    table = screen.query_one(DataTable)
    return [str(cell) for cell in table.get_row_at(index)]


def headers(screen):
    return [str(c.label) for c in screen.query_one(DataTable).columns.values()]


def notices(app):
    return app.query_one(NoticesPane).lines_written


async def test_two_marked_sessions_are_compared_side_by_side(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        sessions(app)
        browser = await open_browser(pilot)
        await mark(pilot, browser, "base.json", "new.json")
        assert browser.marked[0].name == "base.json"
        line = str(browser.query_one(OptionList).get_option_at_index(0).prompt)
        assert line.startswith("1 base.json")
        assert "1 base.json, 2 new.json" in str(browser.query_one("#marked").content)
        await pilot.press("c")
        screen = await compared(pilot)
        # One row per configuration in both (baseline order), by config not by order.
        assert [row_cells(screen, i)[0] for i in range(len(screen.rows))] == \
            ["fake b1 1x1", "fake b2 1x1"]
        assert headers(screen)[:5] == ["configuration", "B verdict", "B Δp50", "B Δp99",
                                       "B Δsamples/s"]
        slower = dict(zip(headers(screen), row_cells(screen, 0)))
        assert slower["B verdict"] == "slower"
        assert slower["B Δp50"].startswith("+") and slower["B Δp50"].endswith("*")
        assert slower["B Δp99"].startswith("+")
        assert float(slower["p50 ms B"]) > float(slower["p50 ms A"])
        same = dict(zip(headers(screen), row_cells(screen, 1)))
        assert same["B verdict"] == "no significant change"
        assert not same["B Δp50"].endswith("*")
        # What only one of them has is listed apart.
        only = str(screen.query_one("#compare-only").content)
        assert "only in A (base.json): fake batch 4" in only
        assert "only in B (new.json): fake batch 8" in only
        # The highlighted row in full, and its histograms naming both sessions.
        detail = str(screen.query_one("#compare-detail").content)
        assert "B: slower" in detail and "p99" in detail and "[" in detail
        pane = screen.query_one(OverlaidHistograms)
        assert pane.has_class("-plot")
        assert "A base.json" in pane.legend and "B new.json" in pane.legend
        assert "20,000 samples" in pane.legend
        # Down shows the next row; Escape goes back to the browser, marks kept.
        await pilot.press("down")
        await pilot.pause()
        assert "B: no significant change" in str(screen.query_one("#compare-detail").content)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is browser and len(browser.marked) == 2


async def test_three_sessions_and_one_without_samples(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        sessions(app)
        browser = await open_browser(pilot)
        await mark(pilot, browser, "base.json", "new.json", "old.json")
        await pilot.press("c")
        screen = await compared(pilot)
        cells = dict(zip(headers(screen), row_cells(screen, 0)))
        assert cells["B verdict"] == "slower"
        assert cells["C verdict"] == "no samples stored"
        assert cells["C Δp50"] and not cells["C Δp50"].endswith("*")  # untested
        assert {"p50 ms A", "p50 ms B", "p50 ms C", "samples/s C"} <= set(headers(screen))
        legend = screen.query_one(OverlaidHistograms).legend
        assert "A base.json" in legend and "B new.json" in legend
        assert "C old.json: no samples stored" in legend
        assert "only in C" not in str(screen.query_one("#compare-only").content)


async def test_one_marked_session_is_a_notice(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        sessions(app)
        browser = await open_browser(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert app.screen is browser
        assert "0 marked" in str(browser.query_one("#error").content)
        await mark(pilot, browser, "base.json")
        await pilot.press("c")
        await pilot.pause()
        assert app.screen is browser
        assert "mark two or more sessions" in str(browser.query_one("#error").content)
        assert any("1 marked" in text for _, text in notices(app))
        # Space and c in the field are typed, not marks.
        field = browser.query_one(Input)
        field.focus()
        field.value = ""
        await pilot.press("space", "c")
        await pilot.pause()
        assert field.value == " c" and len(browser.marked) == 1
        # Space again on a marked line unmarks it.
        browser.query_one(OptionList).focus()
        await mark(pilot, browser, "base.json")
        assert browser.marked == []


async def test_an_unreadable_marked_file_is_a_notice_naming_it(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        sessions(app)
        browser = await open_browser(pilot)
        await mark(pilot, browser, "base.json", "broken.json")
        await pilot.press("c")
        await pilot.pause()
        assert app.screen is browser
        error = str(browser.query_one("#error").content)
        assert "broken.json" in error and "not a readable session" in error
        assert any(level == "error" and "broken.json" in text for level, text in notices(app))
        # Sessions with no configuration in common: said in words, nothing drawn.
        await mark(pilot, browser, "broken.json", "other.json")
        await pilot.press("c")
        screen = await compared(pilot)
        assert screen.rows == [] and screen.query_one(DataTable).row_count == 0
        assert "no configuration in common" in str(screen.query_one("#compare-detail").content)
        assert "no configuration in common" in screen.query_one(OverlaidHistograms).message
        assert "only in B (other.json): fake batch 16" in \
            str(screen.query_one("#compare-only").content)


def test_every_session_is_binned_on_the_same_edges():
    rng = np.random.default_rng(0)
    fast = np.sort(rng.normal(1.0, 0.05, 5000))
    slow = np.sort(rng.normal(1.3, 0.05, 3000))
    drawn = overlay([Samples(fast, np.ones(fast.size, np.int64)), None,
                     Samples(slow, np.ones(slow.size, np.int64))], bins=20)
    assert drawn.edges.size == 21 and drawn.low < 1.0 < 1.3 < drawn.high
    assert drawn.shares[1] is None
    for shares, above, below, n in ((drawn.shares[0], drawn.above[0], drawn.below[0], 5000),
                                    (drawn.shares[2], drawn.above[2], drawn.below[2], 3000)):
        assert abs(shares.sum() + (above + below) / n - 1.0) < 1e-9
    # The slow session's mass lies right of the fast one's.
    centres = (drawn.edges[:-1] + drawn.edges[1:]) / 2
    assert (centres * drawn.shares[2]).sum() > (centres * drawn.shares[0]).sum() + 0.2
