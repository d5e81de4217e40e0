"""``latency-tui compare A.json B.json [C.json ...]``: each session against the baseline A, one
row per configuration both have (matched by config), with p50, p99 and throughput, their
relative differences and intervals, and a verdict (``core.compare`` says how it is tested).
The baseline may be a pytest-benchmark JSON file (``core.pbimport``: its benchmarks paired with
the session's configurations, ``--pair NAME=N`` where the rules do not decide).

``latency-tui run --replay SESSION.json --compare [--fail-on ...]`` compares the new session
with the original after the run, with the same tables (``after_replay``).

Exit codes: 0, or 1 when a ``--fail-on`` bound is breached by a significant change; 2 on bad
input (a file that is not a session, a malformed bound, no configuration in common), with one
line naming it. ``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional, Sequence

from ..core.errors import UserError, single_line

EXIT_OK, EXIT_BREACHED = 0, 1
#: The figures a row shows: (metric, its unit, whether a rise is worse).
SHOWN = (("p50", "ms", True), ("p99", "ms", True), ("throughput", "samples/s", False))
FAIL_ON_HELP = ("exit 1 when METRIC (p50, p90, p95, p99, p99.9, throughput) is significantly "
                "worse by more than PCT (p99:+5%%, throughput:-3%%)")


def add_compare_parser(sub: Any) -> None:
    """The ``compare`` subcommand's arguments (here, not in ``cli``, which is near its size)."""
    compare = sub.add_parser("compare", help="compare sessions with a baseline (the first): "
                             "differences, a verdict per configuration, an exit code for CI")
    compare.add_argument("sessions", nargs="+", metavar="SESSION.json",
                         help="the baseline first (a session, or a pytest-benchmark JSON file), "
                              "then the sessions compared with it")
    compare.add_argument("--fail-on", action="append", default=[], metavar="METRIC:PCT%",
                         help=FAIL_ON_HELP)
    compare.add_argument("--allow-noisy", action="store_true", help="judge noisy measurements")
    compare.add_argument("--pair", action="append", default=[], metavar="NAME=N",
                         help="a pytest-benchmark baseline: pair benchmark NAME (its name or "
                              "fullname) with configuration N (1-based, as in the session's "
                              "table) of each session; only the pairs given are compared")
    compare.add_argument("--json", action="store_true", help="as JSON")


def add_replay_arguments(run: argparse.ArgumentParser) -> None:
    """``run --replay SESSION.json --compare [--fail-on ...] [--allow-noisy]``."""
    run.add_argument("--compare", action="store_true",
                     help="with --replay: compare the new session with the original after the "
                          "run (latency-tui compare's tables); with --fail-on, its exit code")
    run.add_argument("--fail-on", action="append", default=[], metavar="METRIC:PCT%",
                     help="with --replay --compare: " + FAIL_ON_HELP)
    run.add_argument("--allow-noisy", action="store_true",
                     help="with --replay --compare: judge noisy measurements")


def replay_bounds(args: argparse.Namespace) -> Sequence[Any]:
    """The ``--fail-on`` bounds of ``run``, checked before anything runs."""
    from ..core import api

    if args.compare and not args.replay:
        raise UserError("--compare: only with --replay SESSION.json (two saved sessions: "
                        "latency-tui compare A.json B.json)")
    for flag, given in (("--fail-on", args.fail_on), ("--allow-noisy", args.allow_noisy)):
        if given and not args.compare:
            raise UserError(f"{flag}: only with --replay SESSION.json --compare")
    return api.parse_bounds(args.fail_on)


def after_replay(original: Any, original_name: str, session: Any, session_name: str,
                 run_code: int, bounds: Sequence[Any], allow_noisy: bool) -> int:
    """After ``run --replay --compare``: the new session against the original, printed as
    ``compare`` prints it. The exit code is the run's when it is not 0 (a failed
    configuration), else the comparison's (1 when a bound is breached). An interrupted run
    is not compared."""
    from ..core import api

    if run_code not in (EXIT_OK, EXIT_BREACHED) or not session.results:
        print("latency-tui: not compared with the original: the run did not finish",
              file=sys.stderr)
        return run_code
    comparison = api.compare_baseline(
        original, session, baseline_name=original_name, other_name=session_name,
        percentiles=api.judged_percentiles(bounds), allow_noisy=allow_noisy)
    code = report([comparison], bounds, allow_noisy, False, original_name)
    return run_code or code


def compare(paths: Sequence[str], fail_on: Sequence[str] = (), allow_noisy: bool = False,
            as_json: bool = False, pairs: Sequence[str] = ()) -> int:
    from ..core import api

    bounds = api.parse_bounds(fail_on)
    chosen = api.parse_pairs(pairs)
    if len(paths) < 2:
        raise UserError("compare: give the baseline session and at least one to compare with it")
    baseline = api.load_any(paths[0])
    sessions = [api.load_compared(path) for path in paths[1:]]
    comparisons = [api.compare_baseline(
        baseline, session, baseline_name=paths[0], other_name=path, pairs=chosen,
        percentiles=api.judged_percentiles(bounds), allow_noisy=allow_noisy)
        for path, session in zip(paths[1:], sessions)]
    return report(comparisons, bounds, allow_noisy, as_json, paths[0],
                  "pytest-benchmark" if isinstance(baseline, api.BenchmarkFile) else "latency-tui")


def report(comparisons: Sequence[Any], bounds: Sequence[Any], allow_noisy: bool, as_json: bool,
           baseline: str, kind: str = "latency-tui") -> int:
    """Print the comparisons (tables, or one JSON document) and return the exit code."""
    from ..core import api

    breached = api.breaches(comparisons, bounds)
    unchecked = api.unchecked_bounds(comparisons, bounds)
    code = EXIT_BREACHED if breached else EXIT_OK
    if as_json:
        document = {
            "baseline": baseline, "baseline_format": kind,
            "comparisons": [c.to_dict() for c in comparisons],
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
            if benchmark_name(pair):  # the figures pytest-benchmark itself reports
                console.print(Text(f"= {config_text(pair.config)}: "
                                   f"{single_line(benchmark_name(pair))}: mean +- std "
                                   f"{_spread(pair.baseline.latency)} ms -> "
                                   f"{_spread(pair.other.latency)} ms (pytest-benchmark: "
                                   f"{pair.baseline.samples:,} calls)"), soft_wrap=True)
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
    imported = any(benchmark_name(p) for p in comparison.pairs)
    if imported:  # a pytest-benchmark baseline: the benchmark each row pairs with
        out.add_column("benchmark")
    out.add_column("configuration")
    for metric, unit, _ in SHOWN:
        out.add_column(f"{metric} {unit}", justify="right")
        out.add_column(Text("change [interval]"), justify="right")
    out.add_column("verdict")
    for pair in comparison.pairs:
        cells: List[Any] = [Text(single_line(benchmark_name(pair) or ""))] if imported else []
        cells.append(Text(single_line(config_text(pair.config))))
        for metric, _, rise_is_worse in SHOWN:
            diff = pair.difference(metric)
            cells.append(Text(f"{_number(diff and diff.baseline)} -> "
                              f"{_number(diff and diff.other)}"))
            cells.append(change_text(diff, rise_is_worse))
        style = {"slower": "bold red", "faster": "green"}.get(pair.verdict, "")
        cells.append(Text(pair.verdict, style=style))
        out.add_row(*cells)
    return out


def benchmark_name(pair: Any) -> Optional[str]:
    """The pytest-benchmark benchmark a pair's baseline came from, if it did."""
    imported = pair.baseline.details.get("pytest-benchmark")
    return str(imported.get("name")) if isinstance(imported, dict) else None


def _spread(latency: Any) -> str:
    return "-" if latency is None else f"{_number(latency.mean)} +- {_number(latency.std)}"


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
