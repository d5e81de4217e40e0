"""The rate search: the highest open-loop rate whose p99 meets a bound (MLPerf's Server
scenario), by bisection over rates.

``RateSearch(base, p99_ms)`` is a ``Strategy``: ``Engine.run(RateSearch(...))`` measures each
trial like any configuration. Without a ``max_rate`` its first trial is the base configuration
in closed loop (``phase: "capacity"``): no open-loop rate above what the copies serve flat out
can have a bounded queue, so that throughput is the upper end. Then each trial is the base
configuration in open loop at the middle of what is known (``phase: "bisect"``): a rate that
meets the bound raises the lower end, one that does not lowers the upper end, until the two are
within ``tolerance`` of each other or the ``budget`` of trials is spent.

A rate meets the bound only with confidence, as the search under bounds judges it: the upper
end of p99's confidence interval within the bound; and only when the load was the one asked
for: every request sent was served, the rate served within ``RATE_SLACK`` of the rate asked
for, and the load generator did not fall behind. A trial that failed, or whose interval
straddles the bound, does not meet it. A bisection trial whose p99 is surely above the bound
is abandoned at the engine's next check (``abandon_p99_above_ms``, as the search under bounds
does): an overloaded rate, whose queue only grows, costs about a second, not its duration.

``outcome()`` follows the searches' contract (``search``): ``search`` ("rate"), ``done``,
``stopped_because`` ("converged" | "budget" | "failure" | "cancelled"), ``summary``, ``best``
(the highest rate that met the bound, as a point, or None), ``tried``, ``trials``, ``budget``,
and ``bounds`` (``{"p99_ms"}``), ``range`` ([low, high] requests/s still in doubt). A point:
``{"step", "phase", "batch", "copies", "workers", "rate", "status", "error_kind",
"samples_per_s", "served_per_s", "p50_ms", "p99_ms", "p99_ci", "verdict", "why",
"abandoned_after_s"}``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence

from .measurement import ConfigResult
from .specs import RunConfig
from .strategies import Strategy, Trial

#: A rate is not met when what was served falls short of it by more than this fraction.
RATE_SLACK = 0.05


def judge(result: ConfigResult, p99_ms: float) -> Dict[str, Any]:
    """``{"verdict": "meets" | "fails" | "uncertain" | "error", "why": ...}`` of one trial."""
    if result.status != "finished" or result.latency is None:
        return {"verdict": "error", "why": result.error or result.status}
    loop = result.details.get("open_loop") or {}
    interval = result.latency.intervals.get("p99")
    if interval is None:
        return {"verdict": "uncertain", "why": f"too few samples ({result.samples}) to bound p99"}
    low, high = interval
    if low > p99_ms:
        return {"verdict": "fails", "why": f"p99's interval starts at {low:.3g} ms, above "
                                          f"{p99_ms:g} ms"}
    if loop:
        asked = float(result.config.rate or 0.0)
        served = loop.get("achieved_rate_per_s") or 0.0
        if loop.get("behind"):
            return {"verdict": "uncertain", "why": "the load generator fell behind"}
        if loop.get("unserved") or served < (1.0 - RATE_SLACK) * asked:
            return {"verdict": "fails", "why": f"served {served:.4g}/s of {asked:.4g}/s asked"}
    if high <= p99_ms:
        return {"verdict": "meets", "why": f"p99's interval ends at {high:.3g} ms, within "
                                           f"{p99_ms:g} ms"}
    return {"verdict": "uncertain", "why": f"p99's interval [{low:.3g}, {high:.3g}] ms straddles "
                                           f"{p99_ms:g} ms"}


def point(result: ConfigResult, p99_ms: float) -> Dict[str, Any]:
    config, latency = result.config, result.latency
    finished = result.status == "finished" and latency is not None
    loop = result.details.get("open_loop") or {}
    abandoned = result.details.get("abandoned")
    after = abandoned.get("after_s") if isinstance(abandoned, dict) else None
    judged = judge(result, p99_ms)
    if after is not None:
        judged["why"] += f" (abandoned after {after:.1f} s)"
    return {
        "step": result.trial.get("step"), "phase": result.trial.get("phase"),
        "batch": config.batch_size, "copies": config.copies, "workers": config.workers_per_copy,
        "rate": config.rate, "status": result.status, "error_kind": result.error_kind,
        "samples_per_s": result.throughput.samples_per_s if finished and result.throughput
        else None,
        "served_per_s": loop.get("achieved_rate_per_s"),
        "p50_ms": latency["p50"] if finished else None,
        "p99_ms": latency["p99"] if finished else None,
        "p99_ci": list(latency.intervals["p99"]) if finished and "p99" in latency.intervals
        else None,
        **judged, "abandoned_after_s": after,
    }


class RateSearch(Strategy):
    """The highest open-loop rate of ``base`` whose p99 meets ``p99_ms``, by bisection."""

    name = "rate"

    def __init__(self, base: RunConfig, p99_ms: float, *, max_rate: Optional[float] = None,
                 min_rate: float = 0.0, tolerance: float = 0.05, budget: int = 12) -> None:
        if not p99_ms > 0:
            raise ValueError(f"p99_ms must be positive, not {p99_ms!r}")
        if max_rate is not None and not max_rate > min_rate >= 0:
            raise ValueError(f"need 0 <= min_rate < max_rate, not {min_rate!r}, {max_rate!r}")
        self.base = replace(base, rate=None)
        self.arrivals = base.arrivals
        self.p99_ms = p99_ms
        self.tolerance = tolerance
        self.budget = max(1, budget)
        self.low = float(min_rate)
        self.high: Optional[float] = None if max_rate is None else float(max_rate)
        self.points: List[Dict[str, Any]] = []
        self.best: Optional[Dict[str, Any]] = None
        self.stopped_because: Optional[str] = None
        self._seen = 0
        self._pending: Optional[Trial] = None

    def propose(self, history: Sequence[ConfigResult]) -> Optional[Trial]:
        if self.stopped_because is not None:
            return None
        if self._pending is not None:
            if len(history) <= self._seen:
                return self._pending  # asked again before its trial was measured
            self._learn(history[-1])
            if self.stopped_because is not None:
                return None
        self._seen = len(history)
        step = len(self.points)
        if step >= self.budget:
            self.stopped_because = "budget"
            return None
        if self.high is None:
            trial = Trial(self.base, {"strategy": self.name, "step": step, "phase": "capacity"})
        else:
            if self.high - self.low <= self.tolerance * self.high:
                self.stopped_because = "converged"
                return None
            rate = (self.low + self.high) / 2
            config = replace(self.base, rate=rate, arrivals=self.arrivals)
            trial = Trial(config, {"strategy": self.name, "step": step, "phase": "bisect",
                                   "rate": rate, "abandon_p99_above_ms": self.p99_ms})
        self._pending = trial
        return trial

    def _learn(self, result: ConfigResult) -> None:
        self._pending = None
        judged = point(result, self.p99_ms)
        self.points.append(judged)
        if result.status == "cancelled":
            self.stopped_because = "cancelled"
        elif judged["phase"] == "capacity":
            capacity = result.throughput.inferences_per_s if result.throughput else None
            if result.status != "finished" or not capacity:
                self.stopped_because = "failure"
            else:
                self.high = capacity
        elif judged["verdict"] == "meets":
            self.low = float(result.config.rate or 0.0)
            self.best = judged
        else:
            self.high = float(result.config.rate or 0.0)

    def outcome(self) -> Dict[str, Any]:
        best = self.best
        if best is not None:
            summary = (f"{best['rate']:.4g} requests/s meets p99 <= {self.p99_ms:g} ms "
                       f"(p99 {best['p99_ms']:.3g} ms)")
        elif self.stopped_because is None:
            summary = f"searching: {len(self.points)} trial(s) so far"
        else:
            summary = f"no rate met p99 <= {self.p99_ms:g} ms"
        return {
            "search": self.name, "done": self.stopped_because is not None,
            "stopped_because": self.stopped_because, "summary": summary, "best": best,
            "tried": list(self.points), "trials": len(self.points), "budget": self.budget,
            "bounds": {"p99_ms": self.p99_ms},
            "range": [self.low, self.high],
        }
