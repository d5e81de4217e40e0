"""How the screen adapts to the terminal's size: every pane at 120x40, the utilisation pane
hidden below 100 columns, the timeline below 34 lines, and below 80x24 a notice instead."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer, Static

from .widgets.results import ResultsTable

#: Below this the panes do not fit; the app shows a notice instead (and keeps running).
MIN_SIZE = (80, 24)
#: Below these the utilisation pane (width) or the timeline (height) is hidden.
NARROW_WIDTH = 100
SHORT_HEIGHT = 34


def apply_size(app: Any, width: int, height: int) -> None:
    too_small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
    app.set_class(too_small, "too-small")
    app.set_class(width < NARROW_WIDTH, "narrow")
    app.query_one(ResultsTable).set_compact(width < NARROW_WIDTH)
    footer = app.query_one(Footer)
    footer.compact = width < 110  # every key in the footer down to 80 columns
    footer.show_command_palette = width >= 110
    app.set_class(height < SHORT_HEIGHT, "short")
    if too_small:
        app.query_one("#too-small", Static).update(
            f"Terminal too small: {width}x{height}.\n"
            f"latency-tui needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}; enlarge the window.\n"
            "A run in progress goes on; q quits."
        )
