"""Throughput with the TUI attached, against the same preset run headless.

    python -m benchmarks.bench_tui                       # cpu-mlp, 5 s a configuration, 3 reps
    python -m benchmarks.bench_tui --preset PATH --duration 10 --reps 5 --json tui.json
    python -m benchmarks.bench_tui --smoke               # seconds: checks the figure comes out

Method: the same plan (the preset with ``--duration``) runs alternately headless
(``Engine(plan, SessionRecorder()).run()`` in a thread, what ``latency-tui run`` does without
its progress line) and inside the app (``LatencyApp`` started headless at 120x40 with its
default engine, in a process of its own, or ``--engine thread``; real monitors and redraws;
the run started with ``r``), in the order headless, TUI, TUI, headless, ... so that drift on
a shared machine falls on both. For each configuration the
figure is the median over repetitions of samples/s with the TUI divided by samples/s
headless; the reported figure is the lowest of those medians. Target: at least 0.97. The
UI thread's CPU time over the run's wall time is reported beside it: on a thread-mode
copy, that is roughly what the timing loop loses to the GIL.

Headless Textual still composes every frame (it only discards the bytes a terminal would
receive), so the app's drawing cost is measured; the terminal emulator's is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET = 0.97


def build(preset: str, duration_s: float, threads: Optional[int] = None) -> Any:
    from dataclasses import replace

    from latency_tui.core.api import Overrides, build_plan, load_preset

    plan = build_plan(load_preset(preset), Overrides(duration_s=duration_s))
    if threads is not None:  # intra-op threads per copy, instead of the engine's choice
        plan = replace(plan, configs=tuple(replace(c, threads_per_copy=threads)
                                           for c in plan.configs))
    return plan


def run_headless(plan: Any) -> List[float]:
    """samples/s per configuration, the engine alone in a worker thread (as the app has it)."""
    from latency_tui.core.api import SessionRecorder
    from latency_tui.core.engine import Engine

    out: Dict[str, Any] = {}

    def work() -> None:
        out["results"] = Engine(plan, SessionRecorder()).run()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return _rates(out["results"])


def run_tui(plan: Any, data_dir: Path, ui_share: List[float], refresh_s: float = 0.5,
            engine: str = "process") -> List[float]:
    """samples/s per configuration with the app attached: headless Textual at 120x40, the
    real engine, CPU and memory monitors, redraws every ``refresh_s``; appends the UI
    thread's CPU time over the run's wall time to ``ui_share``."""
    from latency_tui.core import api
    from latency_tui.tui.app import LatencyApp

    def in_thread(plan_: Any, sink: Any) -> Any:
        return api.start(plan_, sink, isolation="thread")

    async def main() -> List[float]:
        app = LatencyApp(plan.name, data_dir=data_dir, refresh_s=refresh_s,
                         start_run=in_thread if engine == "thread" else None)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            app.plans.plan = plan  # the plan already built, so both modes measure the same one
            cpu, wall = time.thread_time(), time.monotonic()
            await pilot.press("r")
            while app.runs.handle is not None and not app.runs.handle.done:
                await asyncio.sleep(0.05)
            ui_share.append((time.thread_time() - cpu) / (time.monotonic() - wall))
            await pilot.pause()
            app._tick(force=True)
            await pilot.pause()
            return _rates(app.sessions.session.results)

    return asyncio.run(main())


def _rates(results: Sequence[Any]) -> List[float]:
    rates = []
    for result in results:
        if result.status != "finished" or result.throughput is None:
            raise RuntimeError(f"{result.config.label}: {result.status}: {result.error}")
        rates.append(result.throughput.samples_per_s)
    return rates


def measure(preset: str, duration_s: float, reps: int, refresh_s: float = 0.5,
            threads: Optional[int] = None, engine: str = "process") -> Dict[str, Any]:
    plan = build(preset, duration_s, threads)
    headless: List[List[float]] = []
    tui: List[List[float]] = []
    ui_share: List[float] = []
    with tempfile.TemporaryDirectory() as data:
        for rep in range(reps):
            order = ("headless", "tui") if rep % 2 == 0 else ("tui", "headless")
            for mode in order:
                started = time.monotonic()
                if mode == "headless":
                    headless.append(run_headless(plan))
                else:
                    tui.append(run_tui(plan, Path(data), ui_share, refresh_s, engine))
                rates = (headless if mode == "headless" else tui)[-1]
                print(f"rep {rep + 1} {mode:8s} samples/s {', '.join(f'{r:,.0f}' for r in rates)}"
                      f"  ({time.monotonic() - started:.1f} s)", flush=True)
    ratios = []
    for index, config in enumerate(plan.configs):
        ratio = statistics.median(t[index] / h[index] for t, h in zip(tui, headless))
        ratios.append({"config": config.label, "ratio": ratio,
                       "tui_samples_per_s": [t[index] for t in tui],
                       "headless_samples_per_s": [h[index] for h in headless]})
    figure = min(r["ratio"] for r in ratios)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return {"preset": preset, "duration_s": duration_s, "reps": reps, "figure": figure,
            "refresh_s": refresh_s, "ui_thread_cpu_share": statistics.median(ui_share),
            "threads_per_copy": threads, "engine": engine,
            "target": TARGET, "passed": figure >= TARGET, "configs": ratios,
            "load_average": load, "cpus": os.cpu_count()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-mlp")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per configuration")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--refresh", type=float, default=0.5,
                        help="the app's redraw interval in seconds (its default: 0.5)")
    parser.add_argument("--engine", choices=("process", "thread"), default="process",
                        help="where the app runs the engine: its default, a process of its "
                             "own, or a thread of the app's process")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads per copy (default: the engine's choice)")
    parser.add_argument("--smoke", action="store_true", help="one short rep (checks it runs)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.reps = 0.5, 1
    report = measure(args.preset, args.duration, args.reps, args.refresh, args.threads,
                     args.engine)
    print()
    print(f"| configuration | TUI / headless samples/s (median of {report['reps']}) |")
    print("| --- | --- |")
    for row in report["configs"]:
        print(f"| {row['config']} | {row['ratio']:.3f} |")
    verdict = "PASS" if report["passed"] else "MISS"
    print(f"\nTUI throughput: {report['figure']:.3f}x headless (target >= {TARGET}): {verdict}; "
          f"UI thread busy {report['ui_thread_cpu_share']:.1%} of the run (redraw every "
          f"{report['refresh_s']:g} s, engine in a {report['engine']}); "
          f"load average {report['load_average']}, "
          f"{report['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
