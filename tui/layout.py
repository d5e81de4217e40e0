"""How the screen adapts to the terminal's size: every pane at 120x40, the utilisation pane
hidden below 100 columns, the timeline below 34 lines, and below 80x24 a notice instead; and
how often the panes redraw (fixed steps that ``+`` and ``-`` move through)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer, Static

from .keys import key_display
from .widgets.results import ResultsTable

#: The panes' redraw intervals (seconds) that ``+`` / ``-`` step through.
REFRESH_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0)

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
            f"A run in progress goes on; {key_display(app, 'quit')} quits."
        )


def next_refresh(current: float, faster: bool) -> float:
    """The next step from ``current`` (which need not be a step) towards faster or slower
    redraws; the first or last step at either end."""
    if faster:
        return max((s for s in REFRESH_STEPS if s < current - 1e-9), default=REFRESH_STEPS[0])
    return min((s for s in REFRESH_STEPS if s > current + 1e-9), default=REFRESH_STEPS[-1])


def change_refresh(app: Any, faster: bool) -> None:
    """Step the redraw interval and show it in one indicator (a toast that replaces the one
    before), not a notice per key press."""
    app.refresh_s = next_refresh(app.refresh_s, faster)
    slowest, fastest = REFRESH_STEPS[-1], REFRESH_STEPS[0]
    end = " (the slowest)" if app.refresh_s == slowest else \
        " (the fastest)" if app.refresh_s == fastest else ""
    app.clear_notifications()
    app.notify(f"{app.refresh_s:g} s{end}; {key_display(app, 'faster')} faster, "
               f"{key_display(app, 'slower')} slower", title="Panes redraw every", timeout=3,
               markup=False)
