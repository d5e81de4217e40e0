"""(e) The searches' trial counts against their trial budgets, on workloads whose answer is known
analytically.

    python -m benchmarks.search_budget       # under a second
    python -m benchmarks.run --only e        # the same, in run's summary table

Each search is driven by its own ``propose`` with made-up results (no engine, no timing: the
figures are exact and the same on every machine), so that what is measured is the search's
logic: how many configurations it asks for before it stops, and whether it stops on the right
answer. The engine-level tests (``tests/test_search.py``) check the same searches on real
measurements.

- batch: a model that fails above batch ``k`` (k = 3, 37, 1000, 4095), max batch 4096, the same
  time per inference at any batch (samples/s grows with the batch, so no plateau stops the
  doubling): the largest batch that fits must be exactly ``k``; budget 2 log2(4096) + 1.
- throughput: a device with ``capacity`` lanes (1 to 4): samples/s grows with copies up to the
  capacity and is flat past it, workers per copy add nothing; up to 8 copies x 4 workers: the
  answer is ``capacity`` copies x 1 worker.
- slo: latency ``a + b x batch`` (2 ms + 0.5 ms per sample) on a device with 2 lanes (more
  copies stretch each inference, throughput stays that of 2) under p99 <= 25 ms, over batches
  1..128 x copies 1, 2, 4: the answer is the grid point of most samples/s whose p99 is within the
  bound, found by brute force over the grid.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from .common import MODES, Figure, Settings

BATCH_FAILS_ABOVE = (3, 37, 1000, 4095)
MAX_BATCH = 4096
CAPACITIES = (1, 2, 3, 4)
MAX_COPIES, MAX_WORKERS = 8, 4
SLO_A_MS, SLO_B_MS, SLO_BOUND_MS, SLO_LANES = 2.0, 0.5, 25.0, 2
SLO_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
SLO_COPIES = (1, 2, 4)
#: Samples of each made-up trial, spread +-2 % around its latency (tight intervals).
SAMPLES = 2000
SPREAD = 0.02


def _summary(ms: float) -> Any:
    import numpy as np

    from latency_tui.core.stats import summarize

    values = np.linspace(ms * (1 - SPREAD), ms * (1 + SPREAD), SAMPLES) * 1e6
    return summarize(values.astype(np.int64))


def _drive(search: Any, respond: Callable[[Any], Dict[str, Any]]) -> List[Any]:
    """Run ``search`` to its end on made-up results: ``respond(config)`` gives ``rate``
    (samples/s) and ``ms`` (latency), or ``failed``."""
    from latency_tui.core.measurement import ConfigResult, Throughput

    history: List[Any] = []
    while True:
        trial = search.propose(history)
        if trial is None:
            return history
        config, figures = trial.config, respond(trial.config)
        if figures.get("failed"):
            result = ConfigResult(config=config, status="failed", error="does not fit",
                                  error_kind="out_of_memory", trial=dict(trial.info))
        else:
            rate = figures["rate"]
            result = ConfigResult(config=config, status="finished", trial=dict(trial.info),
                                  samples=SAMPLES, latency=_summary(figures["ms"]),
                                  throughput=Throughput(rate / config.batch_size, rate))
        history.append(result)


def _figure(key: str, title: str, outcome: Dict[str, Any], exact: bool, answer: str,
            found: str) -> Figure:
    trials, budget = outcome["trials"], outcome["budget"]
    return Figure(
        key=key, title=title, value=float(trials), unit="trials",
        target=f"<= {budget} trials, the exact answer",
        passed=trials <= budget and exact,
        measured=(f"{trials} of {budget} trials; {'exact' if exact else 'WRONG'}: found "
                  f"{found} (answer {answer}); stopped: {outcome['stopped_because']}"),
        method=clean_method(),
        details={"trials": trials, "budget": budget, "exact": exact, "answer": answer,
                 "found": found, "stopped_because": outcome["stopped_because"]},
    )


def clean_method() -> str:
    from .common import clean_doc

    return clean_doc(__doc__)


def batch_search(k: int) -> Figure:
    from latency_tui.core.search import BatchSearch
    from latency_tui.core.specs import RunConfig

    search = BatchSearch(RunConfig(device="fake", batch_size=1), max_batch=MAX_BATCH)
    _drive(search, lambda c: {"failed": True} if c.batch_size > k else
           {"rate": 1000.0 * c.batch_size, "ms": 1.0})
    outcome = search.outcome()
    found = outcome["largest_fitting_batch"]
    exact = found == k and bool(outcome["largest_fitting_exact"])
    return _figure(f"e_batch_{k}", f"(e) batch search, fails above {k}, max {MAX_BATCH}",
                   outcome, exact, f"batch {k}", f"batch {found}")


def throughput_search(capacity: int) -> Figure:
    from latency_tui.core.search import ThroughputSearch
    from latency_tui.core.specs import RunConfig

    search = ThroughputSearch(RunConfig(device="fake", batch_size=1), max_copies=MAX_COPIES,
                              max_workers=MAX_WORKERS)
    _drive(search, lambda c: {"rate": 1000.0 * min(c.copies, capacity), "ms": 1.0})
    outcome = search.outcome()
    best = outcome["best"] or {}
    found = (best.get("copies"), best.get("workers"))
    return _figure(f"e_throughput_{capacity}",
                   f"(e) throughput search, {capacity} lane(s), up to {MAX_COPIES} x "
                   f"{MAX_WORKERS}", outcome, found == (capacity, 1), f"{capacity} x 1",
                   f"{found[0]} x {found[1]}")


def slo_latency_ms(batch: int, copies: int) -> float:
    return (SLO_A_MS + SLO_B_MS * batch) * max(1.0, copies / SLO_LANES)


def slo_rate(batch: int, copies: int) -> float:
    return min(copies, SLO_LANES) * batch / (SLO_A_MS + SLO_B_MS * batch) * 1e3


def slo_answer() -> Tuple[int, int]:
    """(batch, copies) of the most samples/s whose p99 (the top of the +-2 % spread, about
    +1.96 %) is within the bound: by brute force over the grid."""
    fits = [(slo_rate(b, c), b, c) for b in SLO_BATCHES for c in SLO_COPIES
            if slo_latency_ms(b, c) * (1 + SPREAD) <= SLO_BOUND_MS]
    _, batch, copies = max(fits)
    return batch, copies


def slo_search() -> Figure:
    from latency_tui.core.search import SloSearch
    from latency_tui.core.specs import RunConfig

    search = SloSearch(RunConfig(device="fake", batch_size=1), p99_ms=SLO_BOUND_MS,
                       batch_sizes=SLO_BATCHES, copies=SLO_COPIES)
    _drive(search, lambda c: {"rate": slo_rate(c.batch_size, c.copies),
                              "ms": slo_latency_ms(c.batch_size, c.copies)})
    outcome = search.outcome()
    best: Optional[Dict[str, Any]] = outcome["best"]
    found = (best["batch"], best["copies"]) if best else None
    answer = slo_answer()
    figure = _figure("e_slo", f"(e) slo search, {SLO_A_MS:g} + {SLO_B_MS:g} x batch ms, p99 <= "
                     f"{SLO_BOUND_MS:g} ms, {len(SLO_BATCHES)} batches x copies 1,2,4",
                     outcome, found == answer, f"batch {answer[0]} x {answer[1]} copies",
                     "none" if found is None else f"batch {found[0]} x {found[1]} copies")
    figure.details["pruned"] = len(outcome["pruned"])
    figure.measured += f"; {len(outcome['pruned'])} pruned"
    return figure


def run(settings: Settings) -> List[Figure]:
    del settings  # exact figures: no repetitions, every mode the same
    return ([batch_search(k) for k in BATCH_FAILS_ABOVE]
            + [throughput_search(c) for c in CAPACITIES] + [slo_search()])


def table(figures: List[Figure]) -> str:
    lines = ["| search and workload | trials / budget | exact answer |", "| --- | --- | --- |"]
    for f in figures:
        d = f.details
        lines.append(f"| {f.title[4:]} | {d['trials']} / {d['budget']} | "
                     f"{'yes' if d['exact'] else 'no'} ({d['found']}) |")
    return "\n".join(lines)


def main() -> int:
    figures = run(MODES["full"])
    for figure in figures:
        print(f"{figure.verdict}  {figure.title}: {figure.measured}")
    print()
    print(table(figures))
    return 0 if all(f.passed for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
