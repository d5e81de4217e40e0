"""(a) The engine's added time per sample, against a bare ``perf_counter_ns`` loop, on a no-op
model: the harness's own cost, which lands in every sample it reports."""

from __future__ import annotations

from time import perf_counter_ns
from typing import Any, Callable, List, Tuple

from .common import Figure, Settings, clean_doc, cpu_lane, fmt_ns, median, plan_from_toml, run_one

TARGET_NS = 1000.0

NOOP_PRESET = """
name = "bench-noop"
[model]
source = "builtin:noop"
[run]
device = "cpu"
batch_sizes = [1]
copies = [1]
workers = [1]
copy_mode = "thread"
threads_per_copy = 1
duration_s = {duration}
[warmup]
min_iterations = 1000
max_s = 1.0
"""


def noop_callable() -> Callable[[], Any]:
    """The exact callable the engine times for ``builtin:noop`` on the CPU: worker 0's lane of
    the CPU backend's load of the built-in no-op (a ``functools.partial`` with no arguments)."""
    return cpu_lane("builtin:noop")


def bare_loop(call: Callable[[], Any], n: int) -> Tuple[int, int]:
    """The reference: time each call into a preallocated int64 buffer. (elapsed ns, median ns)."""
    import numpy as np

    buf = np.empty(n, dtype=np.int64)
    now = perf_counter_ns
    start = now()
    for i in range(n):
        t0 = now()
        call()
        t1 = now()
        buf[i] = t1 - t0
    end = now()
    return end - start, int(np.median(buf))


def bare_list_loop(call: Callable[[], Any], n: int) -> Tuple[int, int]:
    """The textbook reference: ``buf.append(t1 - t0)`` (one Python int per sample)."""
    import numpy as np

    buf: List[int] = []
    append = buf.append
    now = perf_counter_ns
    start = now()
    for _ in range(n):
        t0 = now()
        call()
        t1 = now()
        append(t1 - t0)
    end = now()
    return end - start, int(np.median(buf))


def engine_loop(call: Callable[[], Any], n: int) -> Tuple[int, int]:
    """The engine's ``timed_loop`` on the same callable, stopped by its quota: it keeps each
    sample's start and end (two stores per sample, where the bare loop keeps one duration)."""
    import numpy as np

    from latency_tui.core.copies import FOREVER
    from latency_tui.core.timing import END, START, Recorder, StopSignal, timed_loop

    recorder = Recorder()
    stop = StopSignal()
    start = perf_counter_ns()
    timed_loop(call, None, recorder, stop, FOREVER, n)
    end = perf_counter_ns()
    samples = recorder.drain()
    if samples.shape[1] != n:
        raise RuntimeError(f"timed_loop wrote {samples.shape[1]} samples, expected {n}")
    return end - start, int(np.median(samples[END] - samples[START]))


def measure_loops(settings: Settings) -> Figure:
    """Added time per sample of the engine's ``timed_loop`` over a bare timed loop.

    Both loops time the same callable, the backend-prepared ``builtin:noop`` (what the engine
    calls for that model on the CPU), for ``loop_iterations`` iterations, in interleaved
    repetitions (bare, engine, list, then engine, bare, list...: the order alternates so that
    neither always runs first). The bare loop is ``t0 = perf_counter_ns(); f(); t1 =
    perf_counter_ns(); buf[i] = t1 - t0`` into a preallocated int64 numpy array (the engine's
    compact storage); a ``list.append`` variant is reported too. Per repetition, the
    per-iteration wall time is the loop's elapsed time over its iteration count (the inverse of
    its throughput) and the sample median is the median recorded latency. The figure is the
    median over repetitions of the paired difference engine - bare per iteration (target at
    most 1 us); the stricter of the two bare variants is the one judged. The median sample
    difference says how much of that lands inside each sample rather than between them.
    """
    call = noop_callable()
    for fn in (bare_loop, engine_loop, bare_list_loop):  # warm every code path
        fn(call, 2000)
    n = settings.loop_iterations
    rows = {"bare": [], "engine": [], "list": []}
    for rep in range(settings.loop_reps):
        order = (("bare", bare_loop), ("engine", engine_loop), ("list", bare_list_loop))
        if rep % 2:
            order = (order[1], order[0], order[2])
        for name, fn in order:
            elapsed, med = fn(call, n)
            rows[name].append((elapsed / n, med))
    per_it = {k: [r[0] for r in v] for k, v in rows.items()}
    meds = {k: [r[1] for r in v] for k, v in rows.items()}
    added = median([e - b for e, b in zip(per_it["engine"], per_it["bare"])])
    added_list = median([e - b for e, b in zip(per_it["engine"], per_it["list"])])
    sample_added = median([e - b for e, b in zip(meds["engine"], meds["bare"])])
    judged = max(added, added_list)
    return Figure(
        key="a_loop",
        title="(a) engine timed_loop vs bare loop, noop: added time per sample",
        value=judged, unit="ns",
        target=f"<= {TARGET_NS:.0f} ns added",
        passed=judged <= TARGET_NS,
        measured=(f"+{fmt_ns(added)}/iteration (bare {fmt_ns(median(per_it['bare']))}, "
                  f"timed_loop {fmt_ns(median(per_it['engine']))}; list.append bare "
                  f"{fmt_ns(median(per_it['list']))}, +{fmt_ns(added_list)}); median sample "
                  f"{sample_added:+.0f} ns ({median(meds['bare']):.0f} -> "
                  f"{median(meds['engine']):.0f} ns)"),
        method=clean_doc(measure_loops.__doc__),
        details={
            "iterations_per_rep": n, "reps": settings.loop_reps,
            "added_ns_per_iteration_vs_numpy_bare": added,
            "added_ns_per_iteration_vs_list_bare": added_list,
            "median_sample_added_ns": sample_added,
            "per_iteration_ns": per_it, "median_sample_ns": meds,
        },
    )


def measure_engine(settings: Settings, bare_ns_hint: float) -> Figure:
    """Added time per sample of a full engine run over a bare timed loop.

    A whole configuration through the public API, ``Engine(plan, sink).run()`` on
    ``builtin:noop``, device cpu, 1 copy x 1 worker (thread), ``engine_s`` seconds of
    measuring: this includes the engine's collector thread, which drains the samples ten times a
    second while the worker's ``timed_loop`` runs. Its per-iteration wall time is the session's
    ``duration_s`` over its ``samples``; its median sample is the session's p50. Each engine run
    is paired with a bare preallocated-buffer loop (see (a) timed_loop) on the same callable,
    sized to run about as long, in interleaved repetitions (the order alternates). The figure
    is the median over repetitions of the paired difference engine - bare per iteration
    (target at most 1 us), and the median-sample difference beside it.
    """
    call = noop_callable()
    plan = plan_from_toml(NOOP_PRESET.format(duration=settings.engine_s), "bench-noop")
    n = max(10_000, int(settings.engine_s * 1e9 / max(bare_ns_hint, 50.0)))
    bare_it, bare_med, eng_it, eng_med, sessions = [], [], [], [], []
    for rep in range(settings.engine_reps):
        for which in (("bare", "engine") if rep % 2 == 0 else ("engine", "bare")):
            if which == "bare":
                elapsed, med = bare_loop(call, n)
                bare_it.append(elapsed / n)
                bare_med.append(med)
            else:
                result = run_one(plan)
                eng_it.append(result.duration_s * 1e9 / result.samples)
                eng_med.append(result.latency.percentiles["p50"] * 1e6)
                sessions.append({"samples": result.samples, "duration_s": result.duration_s,
                                 "exact": result.latency.exact})
    added = median([e - b for e, b in zip(eng_it, bare_it)])
    sample_added = median([e - b for e, b in zip(eng_med, bare_med)])
    return Figure(
        key="a_engine",
        title="(a) full Engine run vs bare loop, builtin:noop: added time per sample",
        value=added, unit="ns",
        target=f"<= {TARGET_NS:.0f} ns added",
        passed=added <= TARGET_NS,
        measured=(f"+{fmt_ns(added)}/iteration (bare {fmt_ns(median(bare_it))}, Engine "
                  f"{fmt_ns(median(eng_it))}); median sample {sample_added:+.0f} ns "
                  f"({median(bare_med):.0f} -> {median(eng_med):.0f} ns)"),
        method=clean_doc(measure_engine.__doc__),
        details={
            "reps": settings.engine_reps, "engine_s": settings.engine_s,
            "bare_iterations": n, "added_ns_per_iteration": added,
            "median_sample_added_ns": sample_added,
            "bare_per_iteration_ns": bare_it, "engine_per_iteration_ns": eng_it,
            "bare_median_sample_ns": bare_med, "engine_median_sample_ns": eng_med,
            "engine_sessions": sessions,
        },
    )


def run(settings: Settings) -> List[Figure]:
    loops = measure_loops(settings)
    hint = median(loops.details["per_iteration_ns"]["bare"])
    return [loops, measure_engine(settings, hint)]
