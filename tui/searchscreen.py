"""The search on one key: ``t`` asks what to search for (``slo 20`` is the most throughput with
p99 at most 20 ms; ``batch``, ``throughput``, ``rate 20``), runs it, and shows it as it proceeds
(every trial's samples/s against its p99, the Pareto frontier, what was found and what pruned).
During a search, or after one, ``t`` shows that search again; Escape goes back to the panes."""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from latency_tui.core.errors import UserError

from .screens import ValuesPrompt
from .widgets.frontier import SearchPane

KINDS = ("batch", "throughput", "slo", "rate")
HINT = ("slo 20: the most samples/s with p99 <= 20 ms over the sweep's batch sizes, copies and "
        "workers (slo 20 p50=5 mem=8000 adds p50 and peak-memory bounds); batch (or batch "
        "512, its largest): the best batch and the largest that fits; throughput: copies, "
        "then workers; rate 20: the highest open-loop rate with p99 <= 20 ms")
_NUMBER = r"\d+(?:\.\d+)?"


def parse_search(text: str) -> Dict[str, Any]:
    """``"slo 20 p50=5"`` -> the plan changes ``{"search": "slo", "p99_ms": 20.0, ...}``."""
    words = text.replace(",", " ").split()
    if not words or words[0] not in KINDS:
        raise UserError(f"search: start with one of {', '.join(KINDS)} (e.g. slo 20)")
    kind, changes = words[0], {"search": words[0], "p99_ms": None, "p50_ms": None,
                               "max_batch": None, "max_memory_mb": None}
    for word in words[1:]:
        named = re.fullmatch(rf"(p99|p50|max|mem)=({_NUMBER})", word)
        if re.fullmatch(_NUMBER, word):
            key = "max_batch" if kind == "batch" else "p99_ms"
            changes[key] = int(float(word)) if key == "max_batch" else float(word)
        elif named:
            key = {"p99": "p99_ms", "p50": "p50_ms", "max": "max_batch",
                   "mem": "max_memory_mb"}[named.group(1)]
            changes[key] = int(float(named.group(2))) if key == "max_batch" \
                else float(named.group(2))
        else:
            raise UserError(f"search: {word!r} is not a bound (e.g. 20, p99=20, p50=5, max=512, "
                            "mem=8000)")
    return changes


class SearchPrompt(ValuesPrompt):
    """The sweep prompt's look, asking for a search."""

    def on_mount(self) -> None:
        hints = self.query(".hint")
        if hints:
            hints.last().update("Enter starts the search · Escape cancels")


class SearchScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    SearchScreen { align: center middle; }
    SearchScreen > Vertical { width: 95%; height: 90%; border: round $accent; padding: 0 1; }
    SearchScreen .hint { color: $text-muted; height: 1; }
    """
    BINDINGS = [Binding("escape,t", "close", "Back to the panes")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield SearchPane()
            yield Label("Escape (or t) goes back to the panes (a search under way goes on)",
                        classes="hint")

    def on_mount(self) -> None:
        self.show_outcome()
        self.set_interval(0.5, self.show_outcome)

    def show_outcome(self) -> None:
        run = getattr(self.app, "live_run", None)
        self.query_one(SearchPane).show(getattr(run, "search", None))

    def action_close(self) -> None:
        self.dismiss(None)


def search(app: Any) -> None:
    """``t``: show the search under way (or the last), or, between runs, ask for a new one."""
    from .dialogs import run_checked

    run = getattr(app, "live_run", None)
    if app.run_active or (run is not None and run.search is not None and run.active):
        if run is not None and run.search is not None:
            app.push_screen(SearchScreen())
        else:
            app.notice("warning", "a search cannot start during a run: stop the run first "
                                  "(r stops it)")
        return
    plans = app.plans
    if plans.plan is None:
        app.notice("error", "no preset: p picks one")
        return
    current = plans.plan.search
    default = "slo 20" if current is None else " ".join(
        [current.kind] + ([f"{current.p99_ms:g}"] if current.p99_ms is not None else []) +
        ([f"p50={current.p50_ms:g}"] if current.p50_ms is not None else []))

    def parse(text: str) -> Dict[str, Any]:
        changes = parse_search(text)
        problem = plans.check(changes)
        if problem:
            raise UserError(problem)
        return changes

    def done(changes: Optional[Dict[str, Any]]) -> None:
        if changes and app.apply_changes(changes):
            run_checked(app)
            app.push_screen(SearchScreen())

    app.push_screen(SearchPrompt("Search: what to look for", HINT, default, parse), done)
