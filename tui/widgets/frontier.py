"""A search as it proceeds: throughput against p99 for every trial (plotext scatter), the
Pareto frontier drawn as a line through its points and marked apart, the p99 bound as a vertical
line, and under it what the search has found so far. Markers differ in shape, not only colour,
so the pane reads under NO_COLOR."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ..searchview import answer_lines, pruned_lines

Points = List[Tuple[float, float]]


def split_points(outcome: Dict[str, Any]) -> Tuple[Points, Points, Points]:
    """``(frontier, others, best)`` as (p99 ms, samples/s) pairs of finished trials, the frontier
    in order of p99."""
    steps = {p.get("step") for p in outcome.get("frontier") or []}
    best = outcome.get("best") or {}
    frontier: Points = []
    others: Points = []
    chosen: Points = []
    for point in outcome.get("tried") or []:
        if point.get("p99_ms") is None or point.get("samples_per_s") is None:
            continue
        xy = (float(point["p99_ms"]), float(point["samples_per_s"]))
        if best and point.get("step") == best.get("step"):
            chosen.append(xy)
        (frontier if point.get("step") in steps else others).append(xy)
    return sorted(frontier), others, chosen


class SearchPane(Vertical):
    DEFAULT_CSS = """
    SearchPane { height: 1fr; }
    SearchPane > PlotextPlot { height: 1fr; min-height: 8; }
    SearchPane > #search-answer { height: auto; max-height: 12; }
    """

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="search-plot")
        yield Static("", id="search-answer")

    def on_mount(self) -> None:
        self.border_title = "search: samples/s against p99"

    _shown: Optional[Dict[str, Any]] = None

    def show(self, outcome: Optional[Dict[str, Any]]) -> None:
        if outcome == self._shown:
            return
        self._shown = outcome
        answer = self.query_one("#search-answer", Static)
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if not outcome:
            answer.update(Text("waiting for the search's first trial..."))
            plot.refresh()
            return
        frontier, others, best = split_points(outcome)
        if others:
            plt.scatter([x for x, _ in others], [y for _, y in others], marker="x",
                        label="trial")
        if frontier:
            plt.plot([x for x, _ in frontier], [y for _, y in frontier], marker="o",
                     label="frontier")
        if best:
            plt.scatter([x for x, _ in best], [y for _, y in best], marker="@", label="best")
        bound = (outcome.get("bounds") or {}).get("p99_ms")
        if bound:
            plt.vline(bound)
            plt.text(f"p99 bound {bound:g}", bound, max([y for _, y in frontier + others + best]
                                                       or [0.0]))
        plt.xlabel("p99 ms")
        plt.ylabel("samples/s")
        plt.title(str(outcome.get("search", "")) + " search" +
                  ("" if outcome.get("done") else " (running)"))
        plot.refresh()
        answer.update(Text("\n".join(answer_lines(outcome) + pruned_lines(outcome, 3))))
