"""A search's outcome (``core.search``'s JSON contract) as people read it: a summary line, the
answer, and the trials with their verdicts and the Pareto frontier marked, for the CLI's table
and the TUI's search pane. Text from the outcome is shown as text (no markup)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from rich.table import Table
from rich.text import Text

from .format import fmt_ms


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _config(point: Optional[Dict[str, Any]]) -> str:
    if not point:
        return "none"
    return f"batch {point['batch']}, copies {point['copies']} x workers {point['workers']}"


def answer_lines(outcome: Dict[str, Any]) -> List[str]:
    """What the search found, in a few lines: the summary, the best configuration and what else
    its kind reports (the largest batch that fits; why each axis stopped; what was pruned)."""
    kind, best = outcome.get("search"), outcome.get("best")
    lines = [str(outcome.get("summary", ""))]
    if best:
        lines.append(f"best: {_config(best)}: {_rate(best.get('samples_per_s'))} samples/s, "
                     f"p50 {fmt_ms(best.get('p50_ms'))} ms, p99 {fmt_ms(best.get('p99_ms'))} ms")
    else:
        lines.append("best: none found" + (" within the bounds" if kind == "slo" else ""))
    if kind == "batch":
        largest, failure = outcome.get("largest_fitting_batch"), outcome.get("first_failure")
        exact = " (exact)" if outcome.get("largest_fitting_exact") else ""
        lines.append(f"largest batch that fits: {largest if largest is not None else 'none'}"
                     f"{exact}" + (f"; batch {failure['batch']} failed "
                                   f"({failure.get('error_kind') or 'error'})" if failure else ""))
    elif kind == "throughput":
        axes = outcome.get("axes") or {}
        lines.append("copies: " + str(axes.get("copies") or "-") + "; workers: " +
                     str(axes.get("workers") or "-"))
    elif kind == "slo":
        counts = outcome.get("verdicts") or {}
        lines.append("verdicts: " + (", ".join(f"{n} {v}" for v, n in sorted(counts.items())
                                               if n) or "none yet") +
                     f"; pruned {len(outcome.get('pruned') or [])}; frontier "
                     f"{len(outcome.get('frontier') or [])}" +
                     (f"; abandoned early {outcome['abandoned']} (p99 already above the bound)"
                      if outcome.get("abandoned") else ""))
        memory = (outcome.get("bounds") or {}).get("max_memory_mb")
        if memory is not None:
            unjudged = sum(1 for p in outcome.get("tried") or []
                           if p.get("status") == "finished" and p.get("memory_mb") is None)
            lines.append(f"memory bound: peak device memory <= {memory:g} MB" +
                         (f"; {unjudged} trial(s) without a memory figure (uncertain)"
                          if unjudged else ""))
        lines.extend(f"note: {note}" for note in outcome.get("notes") or [])
    return lines


def _on_frontier(point: Dict[str, Any], frontier: List[Dict[str, Any]]) -> bool:
    return any(point.get("step") == f.get("step") for f in frontier)


def _status(point: Dict[str, Any]) -> str:
    after = point.get("abandoned_after_s")
    if isinstance(after, (int, float)):
        return f"abandoned {after:.1f} s"
    return str(point.get("error_kind") or point.get("status"))


def trials_table(outcome: Dict[str, Any]) -> Table:
    """One row per trial, in order; ``*`` marks the frontier (slo), ``>`` the best."""
    slo = outcome.get("search") == "slo"
    memory = slo and (outcome.get("bounds") or {}).get("max_memory_mb") is not None
    frontier = outcome.get("frontier") or []
    best = outcome.get("best") or {}
    table = Table(title=Text(f"{outcome.get('search', '?')} search"), header_style="bold")
    columns = ("#", "phase", "batch", "copies", "workers", "status", "samples/s", "p50 ms",
               "p99 ms") + (("p99 95% CI", "verdict") if slo else ()) + (
                   ("memory MB",) if memory else ())
    for name in columns:
        table.add_column(name, justify="right" if name not in ("phase", "status", "verdict")
                         else "left")
    for point in outcome.get("tried") or []:
        mark = ">" if best and point.get("step") == best.get("step") else (
            "*" if slo and _on_frontier(point, frontier) else "")
        row = [f"{mark}{point.get('step', '')}", str(point.get("phase") or ""),
               str(point["batch"]), str(point["copies"]), str(point["workers"]),
               _status(point),
               _rate(point.get("samples_per_s")), fmt_ms(point.get("p50_ms")),
               fmt_ms(point.get("p99_ms"))]
        if slo:
            ci = point.get("p99_ci")
            row += [f"[{fmt_ms(ci[0])}, {fmt_ms(ci[1])}]" if ci else "-",
                    str(point.get("verdict") or "")]
        if memory:
            row.append(_rate(point.get("memory_mb")))
        table.add_row(*(Text(cell) for cell in row))
    if slo:
        table.caption = Text("> best, * on the Pareto frontier of samples/s against p99; "
                             "'meets' only when the p99 interval's upper end is within the bound")
    return table


def pruned_lines(outcome: Dict[str, Any], limit: int = 8) -> List[str]:
    pruned = outcome.get("pruned") or []
    lines = [f"pruned batch {p['batch']} on {p['copies']} x {p['workers']}: {p['reason']}"
             for p in pruned[:limit]]
    if len(pruned) > limit:
        lines.append(f"... and {len(pruned) - limit} more pruned")
    return lines
