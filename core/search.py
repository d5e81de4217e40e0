"""Searches: strategies that choose each configuration from the results of the earlier ones.

- ``BatchSearch``: doubles the batch until a failure or a throughput plateau, then bisects to
  the largest batch that fits.
- ``ThroughputSearch``: at one batch, more copies (then workers per copy) while throughput
  grows by at least ``min_gain``; the fewest that reach the plateau.
- ``SloSearch``: the most throughput with p99 (p50, peak memory) within bounds over batch x
  copies x workers, judged on confidence intervals (``frontier``), with the Pareto frontier;
  pruned: larger batches past a failing one, and (by the engine: the trial's
  ``abandon_p99_above_ms``) the rest of a trial whose p99 is surely above the bound.

Each runs through ``Engine.run(search)`` like a sweep: every trial is a fully measured
configuration whose result's ``trial`` is ``{"strategy": NAME, "step": i, "phase": ...}``. A
search is used once; a result it receives "cancelled" ends it.

The outcome contract
--------------------
``search.outcome()`` may be called at any time (mid-search for a live view) and returns plain
JSON, meant for the session's top-level ``"search"`` key and for the CLI and TUI to render.

Every search: ``search`` ("batch" | "throughput" | "slo"); ``done`` (bool);
``stopped_because`` (None while running, else a code below); ``summary`` (one line for a
person); ``best`` (None or a point: the answer); ``tried`` (every trial so far, as points, in
order); ``trials`` (measured so far); ``budget`` (the most trials it may take).

A point: ``{"step", "phase", "batch", "copies", "workers", "status", "error_kind",
"samples_per_s", "p50_ms", "p99_ms"}`` (figures None unless the trial finished).

- batch: ``largest_fitting_batch`` (int or None: the largest batch that ran),
  ``largest_fitting_exact`` (True once bisected to a failing batch just above it),
  ``first_failure`` (None or ``{"batch", "error_kind", "error"}``, the smallest failing batch),
  ``max_batch``, ``min_gain``. ``best``: the smallest batch within ``min_gain`` of the most
  samples/s measured. stopped_because: "failure" | "plateau" | "max_batch" | "budget" |
  "cancelled".
- throughput: ``axes`` (``{"copies": reason, "workers": reason}``, a reason "saturated" |
  "limit" | "failure", None before that axis ends), ``max_copies``, ``max_workers``,
  ``min_gain``. ``best``: the fewest copies, then workers, within ``min_gain`` of the most
  samples/s measured on that axis. stopped_because: the reason of the last axis that could
  grow, or "failure" (the base configuration failed) | "budget" | "cancelled".
- slo: ``bounds`` (``{"p99_ms", "p50_ms", "max_memory_mb"}``), ``confidence``, ``abandoned``
  (how many trials the engine ended early because p99 was already above the bound); points add
  ``verdict`` ("meets" | "fails" | "uncertain" | "error"), ``why``, ``p99_ci`` ([low, high] or
  None), ``memory_mb`` (peak device memory, None without a figure) and ``abandoned_after_s``
  (None unless abandoned). ``best``: the
  most samples/s among those that meet (None when none does); ``uncertain``: uncertain points
  with more samples/s than ``best`` (they might beat it if measured longer); ``frontier``: the
  Pareto frontier of samples/s (up) against p99 (down) over finished trials; ``pruned``:
  ``[{"batch", "copies", "workers", "reason"}]``; ``verdicts``: counts; ``notes``: strings.
  stopped_because: "exhausted" | "budget" | "cancelled".
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple

from .frontier import pareto_frontier, peak_memory_mb, trial_verdict, verdict_counts
from .measurement import ConfigResult
from .specs import RunConfig
from .strategies import Strategy, Trial

Steps = Generator[Tuple[RunConfig, str], ConfigResult, None]
DEFAULT_SLO_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


def samples_per_s(result: ConfigResult) -> Optional[float]:
    """Samples per second of a finished trial; None for any other."""
    if result.status != "finished" or result.throughput is None:
        return None
    return result.throughput.samples_per_s


def point(result: ConfigResult) -> Dict[str, Any]:
    """A trial as the outcome shows it."""
    config, latency = result.config, result.latency
    finished = result.status == "finished" and latency is not None
    return {
        "step": result.trial.get("step"), "phase": result.trial.get("phase"),
        "batch": config.batch_size, "copies": config.copies, "workers": config.workers_per_copy,
        "status": result.status, "error_kind": result.error_kind,
        "samples_per_s": samples_per_s(result),
        "p50_ms": latency["p50"] if finished else None,
        "p99_ms": latency["p99"] if finished else None,
    }


def _log2_ceil(ratio: float) -> int:
    return math.ceil(math.log2(ratio)) if ratio > 1 else 0


def _label(p: Optional[Dict[str, Any]]) -> str:
    if p is None:
        return "none"
    rate = p["samples_per_s"]
    return (f"batch {p['batch']}, {p['copies']} x {p['workers']}"
            + (f": {rate:.4g} samples/s" if rate is not None else ""))


class Search(Strategy):
    """A strategy written as a generator (``_steps``) that yields ``(config, phase)`` and is
    sent each trial's result; it sets ``stopped_because`` before it returns."""

    name = "search"

    def __init__(self, base: RunConfig, budget: int) -> None:
        self.base = base
        self.budget = max(1, budget)
        self.results: List[ConfigResult] = []
        self.stopped_because: Optional[str] = None
        self._steps_gen: Optional[Steps] = None
        self._pending: Optional[Trial] = None
        self._seen = 0

    @property
    def done(self) -> bool:
        return self.stopped_because is not None

    def _steps(self) -> Steps:
        raise NotImplementedError

    def propose(self, history: Sequence[ConfigResult]) -> Optional[Trial]:
        if self.done:
            return None
        try:
            if self._steps_gen is None:
                self._steps_gen = self._steps()
                self._seen = len(history)
                config, phase = next(self._steps_gen)
            elif len(history) <= self._seen:
                return self._pending  # asked again before its trial was measured
            else:
                result = history[-1]
                self._seen = len(history)
                self.results.append(result)
                if result.status == "cancelled":
                    self._steps_gen.close()
                    self.stopped_because = "cancelled"
                    return None
                config, phase = self._steps_gen.send(result)
        except StopIteration:
            if not self.done:
                self.stopped_because = "exhausted"
            return None
        if len(self.results) >= self.budget:
            self._steps_gen.close()
            self.stopped_because = "budget"
            return None
        self._pending = Trial(config, {"strategy": self.name, "step": len(self.results),
                                       "phase": phase, **self._trial_info()})
        return self._pending

    def _trial_info(self) -> Dict[str, Any]:
        """What every trial's info adds (the engine reads ``abandon_p99_above_ms``)."""
        return {}

    def points(self) -> List[Dict[str, Any]]:
        return [point(r) for r in self.results]

    def outcome(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"search": self.name, "done": self.done,
                               "stopped_because": self.stopped_because, "best": None}
        out.update(self._outcome())
        out.update(tried=self.points(), trials=len(self.results), budget=self.budget)
        out["summary"] = (f"{self._summary(out)}; {len(self.results)} of at most {self.budget} "
                          f"trials" + (f", stopped: {self.stopped_because}" if self.done
                                       else ", running"))
        return out

    def _outcome(self) -> Dict[str, Any]:
        return {}

    def _summary(self, out: Dict[str, Any]) -> str:
        return f"best {_label(out['best'])}"


class BatchSearch(Search):
    """The throughput-optimal batch and the largest batch that fits."""

    name = "batch"

    def __init__(self, base: RunConfig, max_batch: int = 4096, min_gain: float = 0.03) -> None:
        if base.batch_size < 1 or max_batch < base.batch_size:
            raise ValueError(f"max_batch {max_batch} must be at least the base batch "
                             f"{base.batch_size} (itself at least 1)")
        if min_gain < 0:
            raise ValueError(f"min_gain must not be negative, not {min_gain!r}")
        super().__init__(base, 2 * _log2_ceil(max(max_batch / base.batch_size, 2)) + 1)
        self.max_batch, self.min_gain = max_batch, min_gain
        self.good = 0  # the largest batch that ran
        self.bad: Optional[ConfigResult] = None  # the smallest batch that failed
        self.exact = False

    def _steps(self) -> Steps:
        batch, most, low = self.base.batch_size, 0.0, 0
        while True:
            result = yield replace(self.base, batch_size=batch), "double"
            if result.status == "failed":
                self.bad = result
                break
            self.good = batch
            rate = samples_per_s(result) or 0.0
            low = low + 1 if most > 0 and rate < most * (1 + self.min_gain) else 0
            most = max(most, rate)
            if low >= 2:
                self.stopped_because = "plateau"
                return
            if batch >= self.max_batch:
                self.stopped_because = "max_batch"
                return
            batch = min(batch * 2, self.max_batch)
        while self.bad.config.batch_size - self.good > 1:
            mid = (self.good + self.bad.config.batch_size) // 2
            result = yield replace(self.base, batch_size=mid), "bisect"
            if result.status == "failed":
                self.bad = result
            else:
                self.good = mid
        self.exact = True
        self.stopped_because = "failure"

    def _outcome(self) -> Dict[str, Any]:
        finished = [p for p in self.points() if p["samples_per_s"] is not None]
        best = None
        if finished:
            most = max(p["samples_per_s"] for p in finished)
            best = min((p for p in finished if p["samples_per_s"] * (1 + self.min_gain) >= most),
                       key=lambda p: p["batch"])
        bad = self.bad
        return {"best": best, "largest_fitting_batch": self.good or None,
                "largest_fitting_exact": self.exact and self.good > 0,
                "first_failure": None if bad is None else {
                    "batch": bad.config.batch_size, "error_kind": bad.error_kind,
                    "error": bad.error},
                "max_batch": self.max_batch, "min_gain": self.min_gain}

    def _summary(self, out: Dict[str, Any]) -> str:
        fit = out["largest_fitting_batch"]
        fits = ("none" if fit is None else f"{fit}" if out["largest_fitting_exact"]
                else f"at least {fit}")
        failure = out["first_failure"]
        why = f" (batch {failure['batch']}: {failure['error_kind']})" if failure else ""
        return f"best {_label(out['best'])}; largest batch that fits: {fits}{why}"


class ThroughputSearch(Search):
    """The most samples/s at the base's batch: copies first, then workers per copy."""

    name = "throughput"

    def __init__(self, base: RunConfig, max_copies: int, max_workers: int,
                 min_gain: float = 0.05) -> None:
        if not 1 <= base.copies <= max_copies or not 1 <= base.workers_per_copy <= max_workers:
            raise ValueError(f"max_copies {max_copies} and max_workers {max_workers} must be at "
                             f"least the base's {base.copies} x {base.workers_per_copy}")
        if min_gain < 0:
            raise ValueError(f"min_gain must not be negative, not {min_gain!r}")
        super().__init__(base, 1 + 2 * _log2_ceil(max_copies / base.copies)
                         + 2 * _log2_ceil(max_workers / base.workers_per_copy))
        self.max_copies, self.max_workers, self.min_gain = max_copies, max_workers, min_gain
        self.axes: Dict[str, Optional[str]] = {"copies": None, "workers": None}
        self.chosen: Optional[ConfigResult] = None

    def _steps(self) -> Steps:
        first = yield self.base, "copies"
        if samples_per_s(first) is None:
            self.axes["copies"] = self.stopped_because = "failure"
            return
        self.chosen = first
        self.chosen = yield from self._grow("copies", "copies", self.max_copies)
        self.chosen = yield from self._grow("workers", "workers_per_copy", self.max_workers)
        last = "workers" if self.max_workers > self.base.workers_per_copy else "copies"
        self.stopped_because = self.axes[last]

    def _grow(self, axis: str, attribute: str, limit: int
              ) -> Generator[Tuple[RunConfig, str], ConfigResult, ConfigResult]:
        chosen = self.chosen
        assert chosen is not None
        value = previous = getattr(chosen.config, attribute)
        most = samples_per_s(chosen) or 0.0
        reason = "limit"
        while value < limit:  # double while it pays
            larger = min(value * 2, limit)
            result = yield replace(chosen.config, **{attribute: larger}), axis
            rate = samples_per_s(result)
            if rate is None or rate < most * (1 + self.min_gain):
                reason = "failure" if rate is None else "saturated"
                break
            previous, value, chosen, most = value, larger, result, rate
        low, high = previous, value  # then the fewest within min_gain of the most
        while high - low > 1:
            middle = (low + high) // 2
            result = yield replace(chosen.config, **{attribute: middle}), axis
            rate = samples_per_s(result)
            if rate is not None and rate * (1 + self.min_gain) >= most:
                high, chosen = middle, result
            else:
                low = middle
        self.axes[axis] = reason
        self.chosen = chosen
        return chosen

    def _outcome(self) -> Dict[str, Any]:
        return {"best": None if self.chosen is None else point(self.chosen),
                "axes": dict(self.axes), "max_copies": self.max_copies,
                "max_workers": self.max_workers, "min_gain": self.min_gain}


class SloSearch(Search):
    """The most samples/s with p99 (and p50) within bounds, over batch x copies x workers."""

    name = "slo"

    def __init__(self, base: RunConfig, p99_ms: float, p50_ms: Optional[float] = None,
                 batch_sizes: Sequence[int] = DEFAULT_SLO_BATCHES,
                 copies: Optional[Sequence[int]] = None, workers: Optional[Sequence[int]] = None,
                 confidence: float = 0.95, max_memory_mb: Optional[float] = None,
                 abandon: bool = True) -> None:
        if not p99_ms > 0 or (p50_ms is not None and not p50_ms > 0):
            raise ValueError("latency bounds must be positive milliseconds")
        if max_memory_mb is not None and not max_memory_mb > 0:
            raise ValueError("the memory bound must be positive megabytes")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), not {confidence!r}")
        axes = []
        for name, values in (("batch_sizes", batch_sizes),
                             ("copies", copies or (base.copies,)),
                             ("workers", workers or (base.workers_per_copy,))):
            ordered = tuple(sorted(set(int(v) for v in values)))
            if not ordered or ordered[0] < 1:
                raise ValueError(f"{name} must be positive integers, not {values!r}")
            axes.append(ordered)
        self.batch_sizes, self.copies, self.workers = axes
        super().__init__(base, len(self.batch_sizes) * len(self.copies) * len(self.workers))
        self.p99_ms, self.p50_ms, self.confidence = p99_ms, p50_ms, confidence
        self.max_memory_mb, self.abandon = max_memory_mb, abandon
        self.pruned: List[Dict[str, Any]] = []

    def _trial_info(self) -> Dict[str, Any]:
        # The engine ends a trial whose p99 is already above the bound with confidence.
        return {"abandon_p99_above_ms": self.p99_ms} if self.abandon else {}

    def judge(self, result: ConfigResult) -> Tuple[str, str]:
        """``(verdict, why)`` of one trial against the bounds (``frontier.trial_verdict``)."""
        if result.status != "finished":
            return "error", f"{result.status}: {result.error_kind or result.error or '?'}"
        return trial_verdict(result.latency, result.details, {"p99": self.p99_ms,
                             "p50": self.p50_ms}, self.max_memory_mb, result.config.copy_mode)

    def _steps(self) -> Steps:
        batches = self.batch_sizes
        for copies in self.copies:
            for workers in self.workers:
                for i, batch in enumerate(batches):
                    result = yield replace(self.base, batch_size=batch, copies=copies,
                                           workers_per_copy=workers), "grid"
                    verdict, _ = self.judge(result)
                    if verdict in ("fails", "error"):
                        what = "fails the bounds" if verdict == "fails" else "failed to run"
                        for larger in batches[i + 1:]:
                            self.pruned.append({
                                "batch": larger, "copies": copies, "workers": workers,
                                "reason": f"batch {batch} {what} on {copies} x {workers}: a "
                                          f"larger batch cannot have a lower latency"})
                        break
        self.stopped_because = "exhausted"

    def points(self) -> List[Dict[str, Any]]:
        out = []
        for result in self.results:
            each, (verdict, why) = point(result), self.judge(result)
            interval = result.latency.intervals.get("p99") if result.latency else None
            abandoned = result.details.get("abandoned")
            each.update(verdict=verdict, why=why,
                        p99_ci=None if interval is None else [interval[0], interval[1]],
                        memory_mb=peak_memory_mb(result.details, result.config.copy_mode),
                        abandoned_after_s=abandoned.get("after_s")
                        if isinstance(abandoned, dict) else None)
            out.append(each)
        return out

    def _outcome(self) -> Dict[str, Any]:
        points = self.points()
        meets = [p for p in points if p["verdict"] == "meets"]
        best = max(meets, key=lambda p: (p["samples_per_s"], -p["p99_ms"])) if meets else None
        floor = best["samples_per_s"] if best else -math.inf
        notes = sorted({f"the intervals are at {r.latency.confidence:.0%} confidence, not the "
                        f"{self.confidence:.0%} asked" for r in self.results
                        if r.latency is not None and r.latency.confidence != self.confidence})
        return {
            "best": best,
            "bounds": {"p99_ms": self.p99_ms, "p50_ms": self.p50_ms,
                       "max_memory_mb": self.max_memory_mb},
            "abandoned": sum(1 for p in points if p["abandoned_after_s"] is not None),
            "confidence": self.confidence,
            "uncertain": [p for p in points if p["verdict"] == "uncertain"
                          and p["samples_per_s"] is not None and p["samples_per_s"] > floor],
            "frontier": [dict(p) for p in pareto_frontier(
                [p for p in points if p["status"] == "finished"])],
            "pruned": [dict(p) for p in self.pruned],
            "verdicts": verdict_counts(points),
            "notes": notes,
        }

    def _summary(self, out: Dict[str, Any]) -> str:
        bounds = f"p99 <= {self.p99_ms:g} ms" + (f", p50 <= {self.p50_ms:g} ms"
                                                  if self.p50_ms is not None else "")
        if self.max_memory_mb is not None:
            bounds += f", memory <= {self.max_memory_mb:g} MB"
        best = out["best"]
        text = f"best under {bounds}: {_label(best)}"
        if best is not None and best["p99_ci"]:
            low, high = best["p99_ci"]
            text += f", p99 {best['p99_ms']:.3g} ms [{low:.3g}, {high:.3g}]"
        if out["uncertain"]:
            text += f"; {len(out['uncertain'])} uncertain might beat it"
        text += f"; {len(out['pruned'])} pruned"
        return text + (f", {out['abandoned']} abandoned early" if out["abandoned"] else "")
