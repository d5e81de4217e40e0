"""The utilisation pane: whatever the monitors report, one row each.

It knows nothing of CPUs or GPUs; it draws ``Reading`` rows from any object with a ``name``
and a ``poll()`` (``core.monitors``), or the engine's readings of them during a run
(``show``). When there are more rows than lines (a 96-core host)
it packs them into columns with shorter bars. A reading without a value shows "N/A (reason)".
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

from rich.text import Text
from textual.widget import Widget

from latency_tui.core.api import Monitor, Reading, poll_all
from latency_tui.core.errors import single_line


class UtilisationPane(Widget):
    DEFAULT_CSS = """
    UtilisationPane { padding: 0 1; }
    """

    def __init__(self, monitors: Sequence[Monitor] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.monitors: List[Monitor] = list(monitors)
        self.readings: List[Tuple[str, List[Reading]]] = []
        self.absent: Optional[str] = None

    def on_mount(self) -> None:
        self.border_title = "utilisation"

    def set_monitors(self, monitors: Sequence[Monitor]) -> None:
        self.monitors = list(monitors)
        self.poll()

    def set_absent(self, reason: Optional[str]) -> None:
        """Show one reason instead of readings (a saved session has no live device)."""
        self.absent = reason
        self.refresh()

    def poll(self) -> None:
        """Read the pane's own monitors (between runs; during one the engine's readings come
        through ``show``)."""
        self.show(poll_all(self.monitors))

    def show(self, groups: Sequence[Tuple[str, Sequence[Reading]]]) -> None:
        self.readings = [(name, list(rows)) for name, rows in groups]
        if self.absent is None:
            self.refresh()

    def render(self) -> Text:
        if self.absent is not None:
            return Text(f"N/A ({single_line(self.absent)})", style="dim")
        if not any(rows for _, rows in self.readings):
            return Text("waiting for the first reading", style="dim")
        return render_groups(self.readings, self.content_size.width, self.content_size.height)


#: Narrowest useful "label bar value" cell; below it a group becomes a strip of blocks.
MIN_CELL = 11
_LEVELS = " ▁▂▃▄▅▆▇█"


def render_groups(groups: Sequence[Tuple[str, List[Reading]]], width: int, height: int) -> Text:
    """Each monitor's rows; a group too big for the pane (a 96-core host) is drawn in
    columns, or, when even columns do not fit, as one block character per row."""
    width, height = max(width, 10), max(height, 1)
    total = sum(len(rows) for _, rows in groups)
    labels = min(max((len(r.label) for _, rows in groups for r in rows), default=1), 8)
    parts = []
    for _, rows in groups:
        if not rows:
            continue
        room = max(1, height - (total - len(rows)))  # lines left for this group
        if len(rows) <= room:
            parts.append(render_rows(rows, width, len(rows), labels))
        elif width // -(-len(rows) // room) >= MIN_CELL:
            parts.append(render_rows(rows, width, room))
        else:
            parts.append(render_strip(rows, width))
    return Text("\n").join(parts)


def render_strip(rows: Sequence[Reading], width: int) -> Text:
    """One character per row: its level as a block, "?" when it has no value."""
    values = [r.percent for r in rows if r.percent is not None]
    text = Text(no_wrap=True, overflow="crop")
    first, last = rows[0].label, rows[-1].label
    text.append(f"{first}-{last} ", "bold")
    text.append(f"avg {sum(values) / len(values):.0f}%" if values else "N/A", "")
    per_line = max(1, width - 1)
    for start in range(0, len(rows), per_line):
        text.append("\n")
        for row in rows[start:start + per_line]:
            if row.percent is None:
                text.append("?", "dim")
            else:
                level = min(max(row.percent, 0.0), 100.0)
                text.append(_LEVELS[int(round(level / 100 * (len(_LEVELS) - 1)))],
                            _style(level))
    return text


def render_rows(rows: Sequence[Reading], width: int, height: int,
                label_width: Optional[int] = None) -> Text:
    """Rows in as many columns as the height needs; each "label bar value"."""
    width, height = max(width, 10), max(height, 1)
    columns = max(1, math.ceil(len(rows) / height))
    cell = max(8, width // columns)
    if label_width is None:
        label_width = min(max(len(r.label) for r in rows), 8)
    per_column = math.ceil(len(rows) / columns)
    lines = []
    for line in range(per_column):
        text = Text(no_wrap=True, overflow="crop")
        for column in range(columns):
            index = column * per_column + line
            if index < len(rows):
                text.append_text(_cell(rows[index], label_width, cell - 1))
                text.append(" ")
        lines.append(text)
    return Text("\n").join(lines)


def _style(percent: float) -> str:
    return "red" if percent >= 90 else "yellow" if percent >= 60 else "green"


def _cell(row: Reading, label_width: int, width: int) -> Text:
    text = Text(no_wrap=True, overflow="crop")
    text.append(single_line(row.label)[:label_width].ljust(label_width), "bold")
    text.append(" ")
    room = width - label_width - 1
    if row.percent is None:
        text.append(f"N/A ({single_line(row.note)})" if row.note else "N/A", "dim")
        text.truncate(width, overflow="ellipsis")
        return text
    value = f"{row.percent:3.0f}%"
    note = f" {single_line(row.note)}" if row.note and room >= 22 else ""
    bar_width = max(0, room - len(value) - len(note) - 1)
    if bar_width >= 3:
        filled = int(round(bar_width * min(max(row.percent, 0.0), 100.0) / 100))
        text.append("█" * filled, _style(row.percent))
        text.append("░" * (bar_width - filled), "dim")
        text.append(" ")
    text.append(value)
    text.append(note, "dim")
    text.pad_right(width - len(text))
    return text
