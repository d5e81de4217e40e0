"""The results table: sorting shows the best rows (cursor on the first, scrolled to the top),
Home and End go to the first and last rows, the number keys follow the columns on screen (and
the subtitle names them), and figures resting on too few samples are marked."""

from __future__ import annotations

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from latency_tui.core.stats import summarize
from latency_tui.tui.widgets.results import (
    COLUMNS, FEW_LEGEND, FEW_MARK, WIDE_ONLY, ResultRow, ResultsTable, few_sample_percentiles,
    sort_hint, sort_keys,
)

from .conftest import finish_run

ALL = tuple(key for key, _, _ in COLUMNS)
COMPACT = tuple(key for key in ALL if key not in WIDE_ONLY)


# -- pure: the few-samples mark, the number keys --------------------------------------------
@pytest.mark.parametrize(("n", "few"), [
    (9, ("p50", "p90", "p95", "p99", "p99.9")),
    (500, ("p99", "p99.9")),
    (1000, ("p99.9",)),
    (10000, ()),
])
def test_the_mark_follows_the_summarys_warning(n, few):
    """The table reads the one few-samples warning ``core.stats`` writes: the two agree."""
    assert few_sample_percentiles(summarize(np.arange(1, n + 1) * 1000).warnings) == few


def test_older_sessions_one_warning_per_percentile_are_read_too():
    warnings = ("p99 rests on 4 samples above it; run longer for a meaningful value",
                "p99.9 rests on 0 samples above it; run longer for a meaningful value",
                "warm-up did not stabilise within its bounds")
    assert few_sample_percentiles(warnings) == ("p99", "p99.9")


@pytest.mark.parametrize(("columns", "key", "column"), [
    (ALL, "1", "number"), (ALL, "9", "p99"), (ALL, "0", "status"),
    (COMPACT, "1", "batch"), (COMPACT, "7", "p99"), (COMPACT, "8", "status"),
])
def test_number_keys_follow_the_visible_columns(columns, key, column):
    assert dict(sort_keys(columns))[key] == column


@pytest.mark.parametrize(("columns", "width"), [(ALL, 114), (COMPACT, 74), (COMPACT, 40)])
def test_the_sort_hint_names_the_keys_on_screen_and_fits(columns, width):
    hint = sort_hint(columns, width)
    assert len(hint) <= width
    if width >= 74:
        assert ("9 p99" if columns == ALL else "7 p99") in hint
    assert ("1-0" if columns == ALL else "1-8") in sort_hint(columns, 40)


def test_a_figure_on_few_samples_carries_the_mark():
    warnings = summarize(np.arange(1, 501) * 1000).warnings  # p99 on 5 samples above it
    row = ResultRow("a", 1, 1, 1, p50=1.5, p90=2.5, p99=3.5, status="finished",
                    warnings=warnings)
    cells = dict(zip(ALL, (str(c) for c in row.cells(ALL))))
    assert cells["p99"] == "3.50" + FEW_MARK
    assert cells["p90"] == "2.50 " and cells["p50"] == "1.50 "  # the digits stay aligned


# -- the widget ------------------------------------------------------------------------------
class TableApp(App):
    def compose(self) -> ComposeResult:
        yield ResultsTable(id="results")


def many_rows(n=30):
    rng = np.random.default_rng(0)
    return [ResultRow(f"k{i}", i + 1, 1, 1, p50=float(v), p90=float(v) * 1.2,
                      p99=float(v) * 1.5, status="finished", order=i)
            for i, v in enumerate(rng.uniform(1, 50, n))]


async def test_sorting_scrolls_to_the_top_and_home_end_move_the_cursor():
    """The user's report: after sorting the best rows sat off screen, and Home did nothing."""
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(ResultsTable)
        table.set_rows(many_rows())
        table.focus()
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 29 and table.scroll_y > 0
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0 and table.scroll_y == 0
        await pilot.press("end")
        await pilot.pause()
        table.sort_by("p99")  # low first: the best row at the top, in view
        await pilot.pause()
        p99 = [table.rows_by_key[k].p99 for k in table.shown_keys]
        assert p99 == sorted(p99)
        assert table.cursor_row == 0 and table.scroll_y == 0
        assert table.selected_key() == table.shown_keys[0]


async def test_the_subtitle_explains_the_mark_when_a_row_has_it():
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(ResultsTable)
        table.set_rows(many_rows(3))
        await pilot.pause()
        assert table.border_title == "results"
        few = summarize(np.arange(1, 101) * 1000).warnings
        rows = [ResultRow(r.key, r.batch, 1, 1, p99=r.p99, order=r.order, warnings=few)
                for r in many_rows(3)]
        table.set_rows(rows)
        await pilot.pause()
        assert FEW_LEGEND in table.border_title
        cell = str(table.get_cell(rows[0].key, "p99"))
        assert cell.endswith(FEW_MARK)


# -- the app at 80x24 ------------------------------------------------------------------------
async def test_at_80x24_the_number_keys_sort_the_columns_on_screen(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        field = app.screen.query_one(Input)
        field.value = ""
        field.insert_text_at_cursor("1,2,3,5,6,7,8,9,10,12")
        await pilot.press("enter")
        await finish_run(pilot)
        table = app.query_one(ResultsTable)
        assert table.compact and "7 p99" in table.border_subtitle
        await pilot.press("end")
        await pilot.pause()
        assert table.scroll_y > 0  # more rows than fit: the table scrolled
        await pilot.press("7")  # the 7th column on screen is p99 ("#" and inf/s are hidden)
        await pilot.pause()
        assert table.sort_column == "p99"
        assert table.cursor_row == 0 and table.scroll_y == 0
        p99 = [table.rows_by_key[k].p99 for k in table.shown_keys]
        assert p99 == sorted(p99)
        await pilot.press("1")
        assert table.sort_column == "batch"
        await pilot.press("9")  # no ninth column at 80: nothing changes
        assert table.sort_column == "batch"
