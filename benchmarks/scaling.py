"""(c) Throughput of 2 process copies against 1 on a Python-bound model, the engine's against
what bare spawned processes reach in the same run."""

from __future__ import annotations

import multiprocessing
from time import perf_counter_ns
from typing import Any, Dict, List

from .common import WORKLOADS_FILE, Figure, Settings, clean_doc, median, plan_from_toml, run_one

TARGET = 0.90
#: Below this bare 2-process scaling, other work held a core and (c) compares noise.
MEANINGFUL_BARE_RATIO = 1.5

SCALING_PRESET = """
name = "bench-python-bound"
[model]
source = "{source}"
[run]
device = "cpu"
batch_sizes = [1]
copies = [1]
workers = [1]
copy_mode = "process"
threads_per_copy = 1
duration_s = {duration}
[warmup]
min_iterations = 50
max_s = 2.0
"""


def _bare_worker(conn: Any, source: str) -> None:
    """A bare spawned process: the model loaded and prepared exactly as the engine's copies do
    (the CPU backend's load with 1 thread, worker 0's lane), then, per request, called in a
    closed loop until the deadline, counting calls."""
    from benchmarks.common import cpu_lane
    from latency_tui.core.backends.cpu import inference_context

    call = cpu_lane(source)
    now = perf_counter_ns
    with inference_context():
        for _ in range(50):
            call()
        conn.send("ready")
        while True:
            message = conn.recv()
            if message[0] != "go":
                break
            deadline = message[1]
            calls = 0
            while True:
                call()
                calls += 1
                end = now()
                if end >= deadline:
                    break
            conn.send((calls, end))
    conn.close()


class BarePool:
    """Two bare processes started once and reused for every 1- and 2-process measurement."""

    def __init__(self, source: str, size: int = 2) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns = []
        self.processes = []
        for index in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=_bare_worker, args=(child, source), daemon=True,
                                      name=f"bench-bare{index}")
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        for conn in self.conns:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError("a bare benchmark process did not start")

    def throughput(self, processes: int, seconds: float) -> float:
        """Calls per second of ``processes`` processes together, timed as the engine times its
        copies: from just before the start message to the latest end."""
        start = perf_counter_ns()
        deadline = start + int(seconds * 1e9)
        for conn in self.conns[:processes]:
            conn.send(("go", deadline))
        replies = [conn.recv() for conn in self.conns[:processes]]
        calls = sum(r[0] for r in replies)
        end = max(r[1] for r in replies)
        return calls / ((end - start) / 1e9)

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
        for conn in self.conns:
            conn.close()


def measure(settings: Settings) -> Figure:
    """Scaling of 2 process copies over 1 on a Python-bound model, engine against bare.

    The model, ``benchmarks/workloads.py:python_bound``, does a fixed amount of pure-Python
    work per call (a 5,000-iteration loop, about 150 us here), holding the GIL throughout, so
    only processes scale it (and it needs no torch, so processes start in a fraction of a
    second). The engine runs it through ``Engine(plan, sink).run()`` with
    ``copy_mode = "process"`` (spawned copies), 1 worker per copy, ``threads_per_copy = 1``,
    for ``scaling_s`` seconds, once with 1 copy and once with 2; its throughput is the
    session's inferences per second (samples over the measuring window, from the engine's start
    to the last copy's end). The reference is bare spawned processes (multiprocessing spawn,
    started once and reused), each loading the model with the engine's own loader and CPU
    backend (the same callable the engine times) and calling it in a closed loop until a shared
    deadline, counting calls; 1 process, then 2, for the same duration, timed the same
    way. Repetitions interleave bare 1, engine 1, bare 2, engine 2 (the order reverses every
    other repetition). Per repetition, the engine's ratio is its 2-copy / 1-copy throughput,
    the bare ratio likewise, and their quotient the efficiency; the figures are the medians over
    repetitions (pairing within a repetition cancels slow drifts in the machine's load), and
    the target is an efficiency of at least 90 % (the engine reaches 90 % of the scaling that
    the machine allows at that moment).
    """
    source = f"{WORKLOADS_FILE}:python_bound"
    plans = {
        copies: plan_from_toml(SCALING_PRESET.format(source=source, duration=settings.scaling_s),
                               "bench-python-bound", copies=(copies,))
        for copies in (1, 2)
    }
    engine: Dict[int, List[float]] = {1: [], 2: []}
    bare: Dict[int, List[float]] = {1: [], 2: []}
    pool = BarePool(source, 2)
    try:
        pool.throughput(2, min(0.5, settings.scaling_s))  # settle both processes
        for rep in range(settings.scaling_reps):
            steps = [("bare", 1), ("engine", 1), ("bare", 2), ("engine", 2)]
            if rep % 2:
                steps.reverse()
            for kind, copies in steps:
                if kind == "bare":
                    bare[copies].append(pool.throughput(copies, settings.scaling_s))
                else:
                    result = run_one(plans[copies])
                    engine[copies].append(result.throughput.inferences_per_s)
    finally:
        pool.close()
    reps = range(len(engine[1]))
    engine_ratios = [engine[2][r] / engine[1][r] for r in reps]
    bare_ratios = [bare[2][r] / bare[1][r] for r in reps]
    efficiencies = [e / b for e, b in zip(engine_ratios, bare_ratios)]
    engine_ratio, bare_ratio = median(engine_ratios), median(bare_ratios)
    efficiency = median(efficiencies)
    e1, e2 = median(engine[1]), median(engine[2])
    b1, b2 = median(bare[1]), median(bare[2])
    return Figure(
        key="c",
        title="(c) 2 process copies vs 1, Python-bound model: engine scaling / bare scaling",
        value=efficiency * 100.0, unit="%",
        target=f">= {TARGET * 100:.0f} % of bare scaling",
        passed=efficiency >= TARGET,
        measured=(f"engine/bare scaling {efficiency * 100:.0f} % (median of {len(efficiencies)} "
                  f"paired repetitions; engine {engine_ratio:.2f}x, {e1:.0f} -> {e2:.0f}/s; "
                  f"bare {bare_ratio:.2f}x, {b1:.0f} -> {b2:.0f}/s); engine 1-copy throughput "
                  f"{e1 / b1 * 100:.0f} % of a bare process"),
        note=(f"bare processes scaled only {bare_ratio:.2f}x: the machine did not have two free "
              f"cores, so (c) says little in this run" if bare_ratio < MEANINGFUL_BARE_RATIO
              else ""),
        method=clean_doc(measure.__doc__),
        details={
            "reps": settings.scaling_reps, "duration_s": settings.scaling_s,
            "engine_ratio": engine_ratio, "bare_ratio": bare_ratio,
            "engine_ratios": engine_ratios, "bare_ratios": bare_ratios,
            "efficiencies": efficiencies,
            "engine_throughput_per_s": {str(k): v for k, v in engine.items()},
            "bare_throughput_per_s": {str(k): v for k, v in bare.items()},
            "engine_1copy_vs_bare": e1 / b1, "engine_2copy_vs_bare": e2 / b2,
        },
    )


def run(settings: Settings) -> List[Figure]:
    return [measure(settings)]
