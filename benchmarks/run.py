"""Run latency-tui's engine benchmarks and print a README-ready summary.

    python -m benchmarks.run                 # full run, about 1.5 minutes on 2 cores
    python -m benchmarks.run --quick         # about 35 s
    python -m benchmarks.run --smoke         # seconds: checks the figures come out, not them
    python -m benchmarks.run --only a,c --json bench.json

(``python benchmarks/run.py`` works too.) Figures, each with its target:

(a) the engine's added time per sample against a bare ``perf_counter_ns`` loop on a no-op
    model, for the engine's ``timed_loop`` alone and for a full ``Engine`` run: at most 1 us;
(b) the ``builtin:mlp`` p50 (batch 1, 1 thread) measured by the engine against
    ``torch.utils.benchmark``'s median on the same model object and inputs: within 3 %;
(c) the throughput ratio of 2 process copies over 1 on a Python-bound model, against the ratio
    bare spawned processes reach in the same run: at least 90 % of it;
(d) only with ``--only d``: the open-loop load generator's schedule error (request start minus
    scheduled time) at 1,000 and 10,000 requests/s: p99 at most half the gap between requests;
(e) only with ``--only e``: the searches' trial counts against their budgets on made-up
    workloads whose answer is known (exact figures, under a second): within the budget, and
    the exact answer.

Every figure is a median over interleaved repetitions; the machine is shared and noisy, so
compare figures only within one run. Exit status 0 whether or not targets are met (these are
benchmarks, not tests), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import MODES, REPO_ROOT, Figure  # noqa: E402

SECTIONS = ("a", "b", "c")
#: Sections run only when asked for (``--only d``, ``--only e``).
OPTIONAL_SECTIONS = ("d", "e")


def _host() -> Dict[str, Any]:
    import torch

    from latency_tui.core import __version__

    return {
        "hostname": platform.node(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "logical_cpus": os.cpu_count(), "latency_tui": __version__,
    }


def _load() -> Optional[float]:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _fmt_load(load: Optional[float]) -> str:
    return "unknown" if load is None else f"{load:.2f}"


def run_sections(mode: str, sections: List[str], log: Any = None) -> List[Figure]:
    """Run the chosen benchmarks (``"a"``, ``"b"``, ``"c"``) in ``mode``; their figures."""
    from benchmarks import dispatch, mlp, overhead, scaling, search_budget

    settings = MODES[mode]
    modules = {"a": overhead, "b": mlp, "c": scaling, "d": dispatch, "e": search_budget}
    figures: List[Figure] = []
    for section in sections:
        started = time.perf_counter()
        for figure in modules[section].run(settings):
            figures.append(figure)
            figure.details["section_s"] = round(time.perf_counter() - started, 1)
            if log is not None:
                print(f"{figure.verdict}  {figure.title}: {figure.measured}", file=log,
                      flush=True)
    return figures


def summary_table(figures: List[Figure], host: Dict[str, Any], mode: str) -> str:
    lines = [
        f"Engine benchmarks ({mode} run, `python -m benchmarks.run"
        f"{'' if mode == 'full' else ' --' + mode}`), {host['logical_cpus']} logical CPUs, "
        f"Python {host['python']}, torch {host['torch']}:",
        "",
        "| figure | measured | target | result |",
        "| --- | --- | --- | --- |",
    ]
    for figure in figures:
        lines.append(f"| {figure.title} | {figure.measured} | {figure.target} | "
                     f"{figure.verdict} |")
    notes = [f"- {figure.title.split(' ', 1)[0]} {figure.note}"
             for figure in figures if figure.note]
    if notes:
        lines += ["", "Caveats of this run:", *notes]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmarks of latency-tui's engine overhead, accuracy and scaling.")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--quick", action="store_true", help="shorter run (about 35 s)")
    length.add_argument("--smoke", action="store_true",
                        help="shortest run: checks that every figure comes out (seconds)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="benchmarks to run, from a,b,c,d,e (default: a,b,c)")
    parser.add_argument("--json", metavar="PATH", help="save the figures as JSON")
    parser.add_argument("--methods", action="store_true",
                        help="print how each figure is measured")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    known = SECTIONS + OPTIONAL_SECTIONS
    bad = [s for s in chosen if s not in known]
    sections = [s for s in known if s in chosen]
    if bad or not sections:
        parser.error(f"--only: {', '.join(bad) or 'nothing'} not among {', '.join(known)}")
    json_path = Path(args.json).resolve() if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        parser.error(f"--json: no such directory {json_path.parent}")
    mode = "smoke" if args.smoke else ("quick" if args.quick else "full")

    if str(REPO_ROOT) not in sys.path:  # spawned processes inherit sys.path
        sys.path.insert(0, str(REPO_ROOT))
    started = time.perf_counter()
    host = _host()
    load_before = _load()
    figures = run_sections(mode, sections, log=sys.stderr)
    elapsed = time.perf_counter() - started

    print()
    print(summary_table(figures, host, mode))
    print()
    load_after = _load()
    print(f"({elapsed:.0f} s; medians of interleaved repetitions; ratios are comparable "
          f"only within one run; 1-minute load average {_fmt_load(load_before)} before, "
          f"{_fmt_load(load_after)} after)")
    if args.methods:
        for figure in figures:
            print(f"\n{figure.title}\n{figure.method}")
    if json_path is not None:
        document = {
            "schema": "latency-tui/benchmarks", "schema_version": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": mode,
            "settings": MODES[mode].__dict__, "host": host, "elapsed_s": elapsed,
            "load_average_1min": {"before": load_before, "after": load_after},
            "figures": [f.to_dict() for f in figures],
        }
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, json_path)
        print(f"saved {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
