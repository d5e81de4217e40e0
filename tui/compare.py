"""``latency-tui compare A.json B.json [C.json ...]``: each session against the baseline A, one
row per configuration both have (matched by config), with p50, p99 and throughput, their
relative differences and intervals, and a verdict (``core.compare`` says how it is tested).

Exit codes: 0, or 1 when a ``--fail-on`` bound is breached by a significant change; 2 on bad
input (a file that is not a session, a malformed bound, no configuration in common), with one
line naming it. ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import json
import sys
from typing import Any, List, Optional, Sequence

from ..core.errors import UserError, single_line

EXIT_OK, EXIT_BREACHED = 0, 1
#: The figures a row shows: (metric, its unit, whether a rise is worse).
SHOWN = (("p50", "ms", True), ("p99", "ms", True), ("throughput", "samples/s", False))


def compare(paths: Sequence[str], fail_on: Sequence[str] = (), allow_noisy: bool = False,
            as_json: bool = False) -> int:
    from ..core import api

    bounds = api.parse_bounds(fail_on)
    if len(paths) < 2:
        raise UserError("compare: give the baseline session and at least one to compare with it")
    sessions = [api.load_session(path) for path in paths]
    comparisons = []
    for path, session in zip(paths[1:], sessions[1:]):
        comparison = api.compare_sessions(
            sessions[0], session, baseline_name=paths[0], other_name=path,
            percentiles=api.judged_percentiles(bounds), allow_noisy=allow_noisy)
        if not comparison.pairs:
            raise UserError(f"{path}: no configuration matches one of the baseline {paths[0]} "
                            "(matched by device, batch size, copies, workers, copy mode and rate)")
        comparisons.append(comparison)
    breached = api.breaches(comparisons, bounds)
    unchecked = api.unchecked_bounds(comparisons, bounds)
    code = EXIT_BREACHED if breached else EXIT_OK
    if as_json:
        document = {
            "baseline": paths[0], "comparisons": [c.to_dict() for c in comparisons],
            "fail_on": [b.text for b in bounds], "allow_noisy": allow_noisy,
            "breaches": [{"session": b.comparison.other, "config": api.config_text(b.pair.config),
                          "bound": b.bound.text, "relative": b.difference.relative,
                          "interval": b.difference.interval} for b in breached],
            "not_checked": unchecked, "exit_code": code,
        }
        sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
        return code
    render(comparisons, breached, unchecked, bounds)
    return code


def render(comparisons: Sequence[Any], breached: Sequence[Any], unchecked: Sequence[str],
           bounds: Sequence[Any]) -> None:
    from rich.text import Text

    from ..core.api import config_text
    from .headless import output_console

    console = output_console()
    for comparison in comparisons:
        console.print(table(comparison))
        for label, names in ((comparison.baseline, comparison.only_in_baseline),
                             (comparison.other, comparison.only_in_other)):
            for name in names:
                console.print(Text(f"only in {single_line(label)}: {single_line(name)}"),
                              soft_wrap=True)
        for pair in comparison.pairs:
            for reason in pair.reasons:
                console.print(Text(f"! {config_text(pair.config)}: {single_line(reason, 2000)}"),
                              soft_wrap=True)
    levels = sorted({(d.metric, d.confidence) for c in comparisons for p in c.pairs
                     for d in p.differences if d.confidence is not None}, key=str)
    if levels:
        console.print(Text("intervals of the change: " + ", ".join(
            f"{metric} {100 * level:.4g} %" for metric, level in levels) + " (latency: a "
            "bootstrap of the stored samples; throughput: Welch's t on the per-second values)",
            style="dim"), soft_wrap=True)
    for line in unchecked:
        console.print(Text(single_line(line, 2000)), soft_wrap=True)
    for breach in breached:
        console.print(Text(f"FAIL --fail-on {single_line(breach.bound.text)}: "
                           f"{single_line(breach.text(), 2000)}", style="bold red"),
                      soft_wrap=True)
    if bounds and not breached:
        console.print(Text(f"no --fail-on bound breached ({', '.join(b.text for b in bounds)})"),
                      soft_wrap=True)


def table(comparison: Any) -> Any:
    from rich.table import Table
    from rich.text import Text

    from ..core.api import config_text

    title = f"{single_line(comparison.other)} against the baseline {single_line(comparison.baseline)}"
    out = Table(title=Text(title), header_style="bold")
    out.add_column("configuration")
    for metric, unit, _ in SHOWN:
        out.add_column(f"{metric} {unit}", justify="right")
        out.add_column(Text("change [interval]"), justify="right")
    out.add_column("verdict")
    for pair in comparison.pairs:
        cells: List[Any] = [Text(single_line(config_text(pair.config)))]
        for metric, _, rise_is_worse in SHOWN:
            diff = pair.difference(metric)
            cells.append(Text(f"{_number(diff and diff.baseline)} -> "
                              f"{_number(diff and diff.other)}"))
            cells.append(change_text(diff, rise_is_worse))
        style = {"slower": "bold red", "faster": "green"}.get(pair.verdict, "")
        cells.append(Text(pair.verdict, style=style))
        out.add_row(*cells)
    return out


def change_text(diff: Any, rise_is_worse: bool) -> Any:
    """``+5.2% [+3.9, +6.4]``: red when significantly worse, green when better, dim untested."""
    from rich.text import Text

    if diff is None or diff.relative is None:
        return Text("-")
    text = f"{100 * diff.relative:+.1f}%"
    if diff.interval is None:
        return Text(text, style="dim")
    low, high = diff.interval
    text += f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    worse = "higher" if rise_is_worse else "lower"
    style = "" if diff.change == "unchanged" else ("red" if diff.change == worse else "green")
    return Text(text, style=style)


def _number(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.1f}"
    return f"{value:.3f}" if value >= 1 else f"{value:.4f}"
