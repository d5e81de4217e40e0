"""Soak: a long run at the highest sample rate the MLP preset allows, headless and with the TUI
attached, and how much memory the processes gain while it runs (target: under 50 MB).

    python -m benchmarks.soak                     # 10 minutes each, as the README reports
    python -m benchmarks.soak --minutes 1         # a shorter look

``builtin:mlp`` at batch 1, one copy, one worker: every sample is an event, a store and a
timeline entry, so what grows per sample shows. Memory is the resident set of the process and
all its children (the engine's process under the TUI), read every 10 s; growth is the last
reading minus the one at the first minute, when warm-up and the first allocations are done.
Past the sample cap (2,000,000 by default, reached after a few minutes here) the exact samples
give way to the bounded histogram, so growth after that is what a leak would be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, List, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MB = 50.0
PRESET = "cpu-mlp"


def family_rss_mb() -> float:
    import psutil

    me = psutil.Process()
    total = 0
    for process in [me, *me.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 1e6


def plan(minutes: float):
    from latency_tui.core.api import Overrides, build_plan, load_preset

    return build_plan(load_preset(PRESET), Overrides(batch_sizes=(1,), duration_s=minutes * 60))


def watch(done: Callable[[], bool], readings: List[Tuple[float, float]]) -> None:
    began = time.monotonic()
    while not done():
        readings.append((time.monotonic() - began, family_rss_mb()))
        time.sleep(10)
    # No reading after the run: the TUI's engine process has exited by then, and its memory
    # leaving would read as a fall.


def headless(minutes: float) -> Tuple[List[Tuple[float, float]], int]:
    from latency_tui.core.api import SessionRecorder, start

    recorder = SessionRecorder()
    handle = start(plan(minutes), recorder, isolation="thread")
    readings: List[Tuple[float, float]] = []
    watch(lambda: handle.done, readings)
    return readings, sum(r.samples for r in recorder.session.results)


def with_tui(minutes: float) -> Tuple[List[Tuple[float, float]], int]:
    from latency_tui.tui.app import LatencyApp

    readings: List[Tuple[float, float]] = []

    async def main() -> int:
        data = Path(tempfile.mkdtemp(prefix="soak-"))
        app = LatencyApp(PRESET, data_dir=data)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            app.plans.plan = plan(minutes)
            await pilot.press("r")
            thread = threading.Thread(target=watch, args=(
                lambda: app.runs.handle is None or app.runs.handle.done, readings))
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.5)
            await pilot.pause()
            app._tick(force=True)
            return sum(r.samples for r in app.sessions.session.results)

    samples = asyncio.run(main())
    return readings, samples


def growth(readings: List[Tuple[float, float]]) -> float:
    after_a_minute = next((mb for t, mb in readings if t >= 60), readings[0][1])
    return readings[-1][1] - after_a_minute


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(f"soak: {PRESET} batch 1, {args.minutes:g} min each, {os.cpu_count()} CPUs", flush=True)
    for name, run in (("headless", headless), ("TUI", with_tui)):
        readings, samples = run(args.minutes)
        grew = growth(readings)
        trace = ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in readings[::6])
        print(f"{name}: {samples:,} samples; RSS (MB) {trace}, end {readings[-1][1]:.0f}; "
              f"growth after the first minute {grew:+.1f} MB (target < {TARGET_MB:.0f}): "
              f"{'PASS' if grew < TARGET_MB else 'MISS'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
