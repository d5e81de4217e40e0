"""Sessions side by side: the screen the session browser opens on its ``c`` key with the sessions
marked there (the first marked is the baseline, A; the others B, C, ...).

On top, one row per configuration of the baseline that another session has too (matched by
config, as ``latency-tui compare`` matches them): for each other session its verdict and the
relative change of p50, p99 and throughput against the baseline (``*`` when significant: red
worse, green better; dim when untested), then every session's p50, p99 and samples/s. Under it,
the highlighted row in full (values, changes with their intervals, why a pair was not judged),
the overlaid histograms of that configuration in every session (titled with it in full), and
what only one session has.
The comparison runs in a thread (bootstraps of up to a million samples a configuration), so
the screen draws at once and fills in. Escape goes back to the browser.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from latency_tui.core.errors import UserError, single_line

from .comparemodel import (
    Named, Row, build_rows, change, compare_all, detail, figure, samples_of, short_config,
    unmatched, verdict_style,
)
from .widgets.overlay import OverlaidHistograms

#: The figures each session gets a column of: (metric, header).
FIGURES = (("p50", "p50 ms"), ("p99", "p99 ms"), ("throughput", "samples/s"))
HINT = "↑↓ configuration · * significant (red worse, green better) · Escape: back"
NO_MATCH = ("no configuration in common with the baseline (matched by device, batch size, "
            "copies, workers per copy, copy mode and rate)")


class CompareScreen(ModalScreen[None]):
    """Two or more loaded sessions compared with the first."""

    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical {
        width: 100%; height: 100%; border: round $accent; padding: 0 1; background: $surface;
    }
    CompareScreen #compare-title { height: 1; text-style: bold; }
    CompareScreen DataTable { height: auto; max-height: 12; }
    CompareScreen #compare-detail { height: auto; max-height: 6; }
    CompareScreen OverlaidHistograms {
        height: 1fr; min-height: 7; border: round $primary;
        border-title-style: bold; border-subtitle-color: $text-muted;
    }
    CompareScreen #compare-only { height: auto; max-height: 3; color: $text-muted; }
    CompareScreen .hint { height: 1; color: $text-muted; }
    CompareScreen.-short DataTable { max-height: 6; }
    CompareScreen.-short #compare-detail { max-height: 3; }
    CompareScreen.-short #compare-only { max-height: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Back")]
    #: Below this many rows, the table and the texts get less room, the histogram keeps some.
    SHORT = 34

    def __init__(self, sessions: Sequence[Named]) -> None:
        super().__init__()
        self.sessions = list(sessions)
        self.comparisons: List[Any] = []
        self.rows: List[Row] = []
        #: Set once the comparison has been drawn (or has failed): what the tests wait for.
        self.done = False
        self.problem = ""
        self._samples: Dict[int, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title(), id="compare-title")
            yield DataTable(id="compare-table", cursor_type="row", fixed_columns=1)
            yield Static("comparing the sessions...", id="compare-detail")
            yield OverlaidHistograms(id="compare-histogram")
            yield Static("", id="compare-only")
            yield Label(HINT, classes="hint")

    def _title(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, named in enumerate(self.sessions):
            text.append(" · " if i else "")
            text.append(f"{named.letter} ", named.colour)
            text.append(named.name + (" (baseline)" if i == 0 else ""))
        return text

    def on_mount(self) -> None:
        self.set_class(self.app.size.height < self.SHORT, "-short")
        self.query_one(OverlaidHistograms).show_message("comparing the sessions...")
        self.query_one(DataTable).focus()
        self.compute()

    def on_resize(self) -> None:
        self.set_class(self.app.size.height < self.SHORT, "-short")

    @work(thread=True, exclusive=True)
    def compute(self) -> None:
        try:
            comparisons = compare_all(self.sessions)
        except (UserError, ValueError, ArithmeticError) as exc:
            self._back(self.failed, str(exc))
            return
        self._back(self.show, comparisons)

    def _back(self, method: Any, value: Any) -> None:
        """Hand the answer to the app's thread, unless the app has ended meanwhile."""
        try:
            self.app.call_from_thread(method, value)
        except RuntimeError:  # the app is no longer running: nobody to show it to
            pass

    def failed(self, problem: str) -> None:
        self.problem = f"could not compare the sessions: {single_line(problem)}"
        notice = getattr(self.app, "notice", None)
        if notice is not None:
            notice("error", self.problem)
        if self.is_attached:
            self.query_one("#compare-detail", Static).update(Text(self.problem, "bold red"))
            self.query_one(OverlaidHistograms).show_message(self.problem)
        self.done = True

    def show(self, comparisons: Sequence[Any]) -> None:
        """Fill the table, the unmatched list, and draw the first row."""
        self.comparisons = list(comparisons)
        self.rows = build_rows(self.comparisons)
        if not self.is_attached:
            return
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for key, header in self.columns():
            table.add_column(Text(header), key=key)
        for i, row in enumerate(self.rows):
            table.add_row(*self.cells(row), key=str(i))
        only = unmatched(self.sessions, self.comparisons)
        self.query_one("#compare-only", Static).update(Text("\n".join(only)))
        self.query_one("#compare-only", Static).display = bool(only)
        if self.rows:
            table.move_cursor(row=0)
            self.show_row(0)
        else:
            self.query_one("#compare-detail", Static).update(Text(NO_MATCH, "bold"))
            self.query_one(OverlaidHistograms).show_message(NO_MATCH)
        self.done = True

    def columns(self) -> List[Tuple[str, str]]:
        """(key, header): the configuration; per other session its verdict and changes; then
        every session's figures."""
        out = [("config", "configuration")]
        for named in self.sessions[1:]:
            letter = named.letter
            out += [(f"verdict:{letter}", f"{letter} verdict"), (f"p50:{letter}", f"{letter} Δp50"),
                    (f"p99:{letter}", f"{letter} Δp99"),
                    (f"throughput:{letter}", f"{letter} Δsamples/s")]
        for metric, header in FIGURES:
            out += [(f"{metric}={n.letter}", f"{header} {n.letter}") for n in self.sessions]
        return out

    def cells(self, row: Row) -> List[Text]:
        out = [Text(short_config(row.config), "bold")]
        for named, pair in zip(self.sessions[1:], row.pairs):
            if pair is None:
                out += [Text(f"not in {named.letter}", "dim")] + [Text("-", "dim")] * 3
                continue
            out.append(Text(pair.verdict, verdict_style(pair.verdict)))
            for metric in ("p50", "p99", "throughput"):
                text, style = change(pair.difference(metric), metric != "throughput")
                out.append(Text(text, style, justify="right"))
        results = row.results()
        for metric, _ in FIGURES:
            out += [Text(figure(result, metric), justify="right") for result in results]
        return out

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # the app's own handler redraws its panes on the main screen
        if 0 <= event.cursor_row < len(self.rows):
            self.show_row(event.cursor_row)

    def show_row(self, index: int) -> None:
        """The row in full under the table, and its histograms."""
        row = self.rows[index]
        text = Text()
        for i, (named, pair) in enumerate(zip(self.sessions[1:], row.pairs)):
            line = detail(pair, named.letter) if pair is not None else \
                f"{named.letter}: does not have this configuration"
            text.append(("\n" if i else "") + line,
                        "" if pair is None or pair.judged else "yellow")
        self.query_one("#compare-detail", Static).update(text)
        results = row.results()
        samples = [self.samples(result) for result in results]
        self.query_one(OverlaidHistograms).show(self.sessions, results, samples, row.title)

    def samples(self, result: Optional[Any]) -> Any:
        """A result's stored samples, decoded once."""
        if result is None:
            return None
        key = id(result)
        if key not in self._samples:
            self._samples[key] = samples_of(result)
        return self._samples[key]

    def action_close(self) -> None:
        self.dismiss(None)
