"""(d) The open-loop load generator's own schedule error: how late requests reach the model
against their scheduled time, at 1,000 and 10,000 requests per second.

    python -m benchmarks.dispatch            # about 10 s
    python -m benchmarks.run --only d        # the same, in run's summary table

Not part of ``benchmarks.run``'s default sections: it measures the load generator, not the
engine's overhead on a closed loop.
"""

from __future__ import annotations

import sys
from typing import Any, List

from .common import MODES, Figure, Settings, clean_doc, median, plan_from_toml

RATES = (1000.0, 10000.0)

OPEN_PRESET = """
name = "bench-open-loop"
[model]
source = "builtin:noop"
[run]
device = "cpu"
copy_mode = "{copy_mode}"
threads_per_copy = 1
duration_s = {duration}
mode = "open"
rate = {rate}
arrivals = "{arrivals}"
[warmup]
min_iterations = 200
max_s = 1.0
"""


def _percentile(values: Any, q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q * 100)) if len(values) else float("nan")


def measure_rate(settings: Settings, rate: float, arrivals: str = "poisson",
                 copy_mode: str = "thread") -> Figure:
    """Schedule error of the open-loop load generator at ``rate`` requests per second.

    A whole configuration through ``Engine(plan, sink).run()``: ``builtin:noop`` on the CPU,
    1 copy x 1 worker (thread), open loop at the rate, Poisson arrivals, ``dispatch_s``
    seconds, repeated ``dispatch_reps`` times. Every served request's error is its start (the
    worker's clock reading just before the call) minus its scheduled time, from the engine's
    own ``Samples`` events: the dispatcher's pacing, its hand-over to the worker and the
    worker's wait for the instant, everything the load generator adds before the model runs
    (a no-op model serves in microseconds, so a request almost never waits for the worker).
    The figure is the p99 (with p50 beside it) over all repetitions' requests; the target is
    the generator's own flagging threshold, half the mean gap between requests. The
    dispatcher's hand-over lag (sent minus due, 0 when in time) is in the details.
    """
    import numpy as np

    from latency_tui.core.engine import Engine
    from latency_tui.core.events import Samples

    plan = plan_from_toml(OPEN_PRESET.format(duration=settings.dispatch_s, rate=rate,
                                             arrivals=arrivals, copy_mode=copy_mode),
                          "bench-open-loop")
    errors, offered, achieved, lags, warnings = [], [], [], [], []
    for _ in range(settings.dispatch_reps):
        events: List[Any] = []
        (result,) = Engine(plan, events.append).run()
        if result.status != "finished":
            raise RuntimeError(f"open loop at {rate:g}/s: {result.status}: {result.error}")
        for event in events:
            if isinstance(event, Samples) and event.block.scheduled_ns is not None:
                errors.append(event.block.start_ns - event.block.scheduled_ns)
        loop = result.details["open_loop"]
        offered.append(loop["offered_rate_per_s"])
        achieved.append(loop["achieved_rate_per_s"])
        lags.append(loop["send_lag_us"])
        warnings.extend(result.warnings)
    error_us = np.concatenate(errors) / 1e3
    p50, p99 = _percentile(error_us, 0.50), _percentile(error_us, 0.99)
    gap_us = 1e6 / rate
    return Figure(
        key=f"d_{int(rate)}",
        title=f"(d) open-loop schedule error at {rate:,.0f}/s ({arrivals}, noop, {copy_mode})",
        value=p99, unit="us",
        target=f"p99 <= {gap_us / 2:,.0f} us (half the gap)",
        passed=p99 <= gap_us / 2,
        measured=(f"p50 {p50:.1f} us, p99 {p99:.1f} us, max {float(error_us.max()):,.0f} us "
                  f"over {error_us.size:,} requests; offered {median(offered):,.0f}/s, "
                  f"served {median(achieved):,.0f}/s"),
        method=clean_doc(measure_rate.__doc__),
        details={"rate": rate, "arrivals": arrivals, "copy_mode": copy_mode,
                 "reps": settings.dispatch_reps, "seconds": settings.dispatch_s,
                 "p50_us": p50, "p90_us": _percentile(error_us, 0.90), "p99_us": p99,
                 "max_us": float(error_us.max()), "requests": int(error_us.size),
                 "offered_per_s": offered, "achieved_per_s": achieved,
                 "handover_lag_us": lags, "warnings": sorted(set(warnings))},
    )


def run(settings: Settings) -> List[Figure]:
    return [measure_rate(settings, rate) for rate in RATES]


def main() -> int:
    mode = "quick" if "--quick" in sys.argv else ("smoke" if "--smoke" in sys.argv else "full")
    for figure in run(MODES[mode]):
        print(f"{figure.verdict}  {figure.title}: {figure.measured}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
