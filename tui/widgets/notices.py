"""Notices: warnings (too few samples, unstable warm-up, busy host), errors of failed
configurations, and what the app did (saved a session). Each line starts with its level as a
word, so it reads without colour. The counts under the pane are the current run's: each run
starts them from zero (``begin_run``); the lines of earlier runs stay above."""

from __future__ import annotations

from typing import List, Tuple

from rich.text import Text

from latency_tui.core.errors import printable
from textual import events
from textual.widgets import RichLog

LEVEL_STYLES = {"error": "bold red", "warning": "bold yellow", "info": "bold"}


class NoticesPane(RichLog):
    DEFAULT_CSS = """
    NoticesPane { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(wrap=True, markup=False, max_lines=500, **kwargs)
        self.counts = {"error": 0, "warning": 0, "info": 0}
        self.lines_written: List[Tuple[str, str]] = []
        #: Whose notices the counts are: "" before the first run, then "run 2".
        self.run_label = ""
        self._wrapped_at = 0

    def on_mount(self) -> None:
        self.border_title = "notices"

    def add(self, level: str, text: str) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        self.lines_written.append((level, text))
        self.lines_written = self.lines_written[-500:]
        self._write(level, text)
        self._count()

    def begin_run(self, label: str) -> None:
        """Count the notices of a new run from zero."""
        self.counts = {"error": 0, "warning": 0, "info": 0}
        self.run_label = label
        self._count()

    def _count(self) -> None:
        errors, warnings = self.counts["error"], self.counts["warning"]
        counted = (f"{errors} error{'s' if errors != 1 else ''}, "
                   f"{warnings} warning{'s' if warnings != 1 else ''}")
        self.border_subtitle = f"{self.run_label}: {counted}" if self.run_label else counted

    def _write(self, level: str, text: str) -> None:
        line = Text()
        line.append(f"{level:<7} ", LEVEL_STYLES.get(level, "bold"))
        line.append(printable(text))
        # Wrap to the pane (RichLog would measure against the console's width).
        self.write(line, width=self.scrollable_content_region.width or None)

    def on_resize(self, event: events.Resize) -> None:
        """Re-wrap every notice to the new width (those written before the first layout
        too, which had no width to wrap to)."""
        width = self.scrollable_content_region.width
        if width and width != self._wrapped_at:
            self._wrapped_at = width
            self.clear()
            for level, text in self.lines_written:
                self._write(level, text)
