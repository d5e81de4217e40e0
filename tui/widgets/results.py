"""The results table: one row per configuration of the session, sortable by any column.

Rows are few (a sweep is tens of configurations), so a change of rows or order rebuilds the
table; the running row's figures change a few times a second and go through ``update_cell``
without re-measuring column widths. Sorting is by raw numbers, not by the formatted text, and
puts the cursor on the first row with the table scrolled to the top (the best rows are what a
sort is for); Home and End go to the first and last rows. The number keys follow the columns on
screen (1 is the first visible column), and the subtitle names them. A percentile resting on
too few samples above it (the summary's warning says which) is marked with ``?``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rich.text import Text

from latency_tui.core.errors import single_line
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable

from ..format import fmt_ms, fmt_rate

#: (column key, header, width), in the order of the number keys 1-9, 0 that sort by them.
COLUMNS: Tuple[Tuple[str, str, int], ...] = (
    ("number", "#", 3),
    ("batch", "batch", 6),
    ("copies", "copies", 6),
    ("workers", "workers", 7),
    ("inf_s", "inf/s", 10),
    ("samples_s", "samples/s", 10),
    ("p50", "p50 ms", 9),
    ("p90", "p90 ms", 9),
    ("p99", "p99 ms", 9),
    ("status", "status", 14),
)

#: Columns left out below 100 terminal columns, so that p99 and status stay on screen at 80,
#: and the narrower widths of the others there.
WIDE_ONLY = {"number", "inf_s"}
COMPACT_WIDTHS = {"batch": 5, "samples_s": 9, "p50": 6, "p90": 6, "p99": 6, "status": 13}

#: The mark after a figure that rests on too few samples above it, and what it means.
FEW_MARK = "?"
FEW_LEGEND = f"{FEW_MARK} rests on few samples above it"
#: The summary's few-samples warning names each percentile as "p99 rests on 4 ..." or, after
#: the first, "p99.9 on 0" (``core.stats.tail_warnings``; tests/tui/test_results.py checks the
#: two agree).
_FEW_PATTERN = re.compile(r"(?:^|[\s,])(p\d+(?:\.\d+)?) (?:rests )?on \d+")

STATUS_STYLES = {
    "finished": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "skipped": "dim",
    "pending": "dim",
}


@dataclass(frozen=True)
class ResultRow:
    key: str
    batch: int
    copies: int
    workers: int
    inf_s: Optional[float] = None
    samples_s: Optional[float] = None
    p50: Optional[float] = None
    p90: Optional[float] = None
    p99: Optional[float] = None
    status: str = "pending"
    order: int = 0  # arrival order, the default sort
    warnings: Tuple[str, ...] = ()  # the latency summary's, for the few-samples mark

    @property
    def few_samples(self) -> Tuple[str, ...]:
        """The percentiles whose figures rest on too few samples above them."""
        return few_sample_percentiles(self.warnings)

    @property
    def number(self) -> int:
        return self.order + 1

    def cells(self, columns: Tuple[str, ...]) -> List[Any]:
        out: List[Any] = []
        for key in columns:
            value = getattr(self, key)
            if key in ("inf_s", "samples_s"):
                out.append(Text(fmt_rate(value), justify="right"))
            elif key in ("p50", "p90", "p99"):
                few = value is not None and key in self.few_samples
                cell = Text(fmt_ms(value), justify="right")
                cell.append(FEW_MARK if few else " ", "bold" if few else "")
                out.append(cell)
            elif key == "status":
                out.append(Text(single_line(value), style=STATUS_STYLES.get(value, "bold")))
            else:
                out.append(Text(str(value), justify="right"))
        return out


def few_sample_percentiles(warnings: Sequence[str]) -> Tuple[str, ...]:
    """The percentiles a summary's warnings say rest on too few samples above them."""
    found: List[str] = []
    for warning in warnings:
        if "rests on" in warning:
            found.extend(k for k in _FEW_PATTERN.findall(warning) if k not in found)
    return tuple(found)


def sort_keys(columns: Sequence[str]) -> List[Tuple[str, str]]:
    """(key, column) for the number keys, in the order of the ``columns`` on screen: 1-9,
    then 0 for a tenth."""
    return [(str((i + 1) % 10), column) for i, column in enumerate(columns[:10])]


def sort_hint(columns: Sequence[str], width: int) -> str:
    """The table's subtitle: which number key sorts which visible column, the longest form
    that fits ``width``."""
    headers = {key: header.replace(" ms", "") for key, header, _ in COLUMNS}
    keys = sort_keys(columns)
    if not keys:
        return ""
    named = " ".join(f"{k} {headers[c]}" for k, c in keys)
    span = f"{keys[0][0]}-{keys[-1][0]}" if len(keys) > 1 else keys[0][0]
    for text in (f"sort: {named}", f"keys {span} sort by column", f"{span} sort"):
        if len(text) <= width:
            return text
    return text[:max(width, 0)]


class ResultsTable(DataTable):
    DEFAULT_CSS = """
    ResultsTable { height: 1fr; }
    """
    #: DataTable's Home and End scroll sideways, which a row cursor never needs.
    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.rows_by_key: Dict[str, ResultRow] = {}
        self.sort_column: Optional[str] = None
        self.sort_reverse = False
        self.compact = False
        self._shown: List[str] = []

    @property
    def visible_columns(self) -> Tuple[str, ...]:
        return tuple(k for k, _, _ in COLUMNS if not (self.compact and k in WIDE_ONLY))

    def on_mount(self) -> None:
        self._add_columns()
        self._update_subtitle()

    def on_resize(self, event: events.Resize) -> None:
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        """The number keys under the table; the mark's meaning beside the title, while a row
        carries it."""
        width = (self.size.width or (80 if self.compact else 120)) - 4  # less the corners
        self.border_subtitle = sort_hint(self.visible_columns, width)
        marked = any(self.marked(row) for row in self.rows_by_key.values())
        self.border_title = f"results · {FEW_LEGEND}" if marked else "results"

    def marked(self, row: ResultRow) -> bool:
        """Whether ``row`` shows a figure marked with ``?`` (a p99.9 warning marks none)."""
        visible = self.visible_columns
        return any(key in visible and getattr(row, key, None) is not None
                   for key in row.few_samples)

    def _add_columns(self) -> None:
        visible = self.visible_columns
        for key, label, width in COLUMNS:
            if key in visible:
                if self.compact:
                    width = COMPACT_WIDTHS.get(key, width)
                self.add_column(label, key=key, width=width)

    def set_compact(self, compact: bool) -> None:
        """Narrow terminals leave out "#" and inf/s (samples/s and the rest stay)."""
        if compact != self.compact:
            self.compact = compact
            self.clear(columns=True)
            self._add_columns()
            self._rebuild()
            self._update_subtitle()

    # -- data ----------------------------------------------------------------------------
    def set_rows(self, rows: List[ResultRow]) -> None:
        """Show exactly these rows; cheap when only the values of shown rows changed."""
        new = {row.key: row for row in rows}
        if set(new) == set(self.rows_by_key) and len(self._shown) == len(new):
            changed = [row for row in rows if self.rows_by_key.get(row.key) != row]
            self.rows_by_key = new
            for row in changed:
                self._update_row(row)
            if changed:
                self._update_subtitle()
            return
        self.rows_by_key = new
        self._rebuild()
        self._update_subtitle()

    def _update_row(self, row: ResultRow) -> None:
        columns = self.visible_columns
        for column, cell in zip(columns, row.cells(columns)):
            self.update_cell(row.key, column, cell, update_width=False)

    def _ordered(self) -> List[ResultRow]:
        rows = sorted(self.rows_by_key.values(), key=lambda r: r.order)
        if self.sort_column is None:
            return rows
        column = self.sort_column
        present = [r for r in rows if getattr(r, column) is not None]
        missing = [r for r in rows if getattr(r, column) is None]
        present.sort(key=lambda r: getattr(r, column), reverse=self.sort_reverse)
        return present + missing  # rows without the figure stay last either way

    def _rebuild(self, keep_cursor: bool = True) -> None:
        selected = self.selected_key() if keep_cursor else None
        self.clear()
        ordered = self._ordered()
        columns = self.visible_columns
        for row in ordered:
            self.add_row(*row.cells(columns), key=row.key)
        self._shown = [row.key for row in ordered]
        self._label_columns()
        if selected in self._shown:
            self.move_cursor(row=self._shown.index(selected), animate=False)

    # -- sorting -------------------------------------------------------------------------
    def sort_by(self, column: str) -> None:
        """Sort by ``column``; the same column again reverses; numbers start high-first
        for throughput and low-first for latency, the order a reader looks for."""
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column = column
            self.sort_reverse = column in ("inf_s", "samples_s")
        self._rebuild(keep_cursor=False)
        self.move_cursor(row=0, animate=False)
        self.scroll_to(0, 0, animate=False, immediate=True)

    def sort_by_number(self, number: int) -> bool:
        """Keys 1-9 sort by the first nine columns on screen, 0 by the tenth; False when
        there is no such column (a narrow terminal shows fewer)."""
        for key, column in sort_keys(self.visible_columns):
            if key == str(number):
                self.sort_by(column)
                return True
        return False

    def _label_columns(self) -> None:
        for key, label, _ in COLUMNS:
            column = self.columns.get(key)  # type: ignore[call-overload]
            if column is None:
                continue
            arrow = ""
            if key == self.sort_column:
                arrow = " ▼" if self.sort_reverse else " ▲"
                if self.compact and len(label + arrow) > COMPACT_WIDTHS.get(key, len(label)):
                    label = label.replace(" ms", "")  # the arrow matters more than the unit
            column.label = Text(label + arrow)
        self.refresh()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    # -- selection -----------------------------------------------------------------------
    @property
    def shown_keys(self) -> List[str]:
        return list(self._shown)

    def selected_key(self) -> Optional[str]:
        if not self._shown or not (0 <= self.cursor_row < len(self._shown)):
            return None
        return self._shown[self.cursor_row]
