"""Open-loop load, and the collector that feeds a configuration's streams while it is measured.

Open loop: requests arrive at a target rate whatever the copies do, as real traffic does. Each
copy runs its own ``Dispatcher`` at ``rate / copies`` (a superposition of independent Poisson
streams is a Poisson stream of the summed rate; constant streams get evenly spread phase
offsets, so that together they are evenly spaced too). The dispatcher never waits for a
completion: at each scheduled instant it puts the request's scheduled time on its copy's queue,
and the copy's workers serve the queue (``timing.served_loop``). Each sample's latency is
counted from its scheduled time, so the time a request waited for a free worker counts (no
coordinated omission); the service time (end - start) and the time queued are kept as stages.

Requests are handed over up to ``LEAD_NS`` before they are due, and a free worker waits for
the instant itself (``timing.pace``), so that no thread wake-up lands in the latency. The dispatcher
records, per request, when it was due and when it was put on the queue: the engine's
``DispatchLog`` turns that into the intended and achieved rates and the send lag (how late a
request was handed over, 0 when in time), and warns when the load generator itself fell behind
its schedule (its p99 lag above ``LAG_FRACTION`` of its mean gap between requests): then the
offered load was not the one asked for, whatever the copies did.

``Collector`` is what the engine runs about ten times a second while measuring: it drains the
copies' samples into the configuration's streams, emits ``Samples`` and ``Progress``, and says
when the configuration may end before its maximum: the sample count reached, or early stop
(p99's confidence interval within +-X % of p99, checked at most every ``EARLY_CHECK_S``), or
abandonment: a search under a p99 bound (``SloSearch``) passes the bound in the trial's info
(``abandon_p99_above_ms``), and a configuration whose p99 is already above it with confidence
(the one-sided lower bound of p99 at ``ABANDON_CONFIDENCE`` above the bound, after at least
``ABANDON_MIN_S`` and ``ABANDON_MIN_SAMPLES``) ends at that check: it cannot meet the bound, so
measuring it longer would only spend time. Its result is "finished", with
``details["abandoned"]``; the search judges it "fails".
"""

from __future__ import annotations

import contextlib
import queue
import sys
import time
from time import perf_counter_ns
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .events import Progress, Samples
from .specs import RunConfig, StopRule
from .streams import Block, ConfigStreams, SampleStream
from .timing import END_OF_REQUESTS, Recorder, StopSignal, slack_timers

#: Scheduled times are drawn this many at a time (no per-request draw, no unbounded schedule).
SCHEDULE_BLOCK = 4096
#: Seeds of the copies' Poisson streams: fixed, so that every configuration of a run (and every
#: run) is offered the same traffic, which makes their comparison sharper.
SEED = 20_240_601
#: The dispatcher hands requests over ahead of time, in batches: when the next one is
#: ``REFILL_NS`` from due, every request due within ``LEAD_NS`` goes on the queue. A free worker
#: takes one and waits for its instant itself (``timing.pace``), so no thread wake-up lands in
#: the latency, and the dispatcher needs the interpreter about once a millisecond, however high
#: the rate (a worker spinning for its instant can keep it from the GIL that long).
LEAD_NS = 2_000_000
REFILL_NS = 1_000_000
#: A backlog this long means the copies cannot keep up: the dispatcher pauses (the requests it
#: holds back keep their scheduled time, so their wait still counts) to bound memory.
MAX_BACKLOG = 100_000
#: The load generator is behind when its p99 send lag exceeds this fraction of its mean gap.
LAG_FRACTION = 0.5
#: While an open loop runs, a thread that wants the GIL gets it within this long (Python's
#: default, 5 ms, would let a model that holds the GIL keep the dispatcher from its schedule).
SWITCH_INTERVAL_S = 0.0005
#: Early stop computes p99's interval at most this often.
EARLY_CHECK_S = 0.5
#: Abandonment: a configuration's p99 above the bound is believed only at this one-sided
#: confidence (strict, since it is tested every ``EARLY_CHECK_S``), after this long and this
#: many samples (a few inferences over the bound at the start, a stall, are not a verdict).
ABANDON_CONFIDENCE = 0.999
ABANDON_MIN_S = 0.5
ABANDON_MIN_SAMPLES = 50
#: Dispatch record rows.
DUE, SENT = 0, 1


@contextlib.contextmanager
def quick_switching(on: bool = True) -> Iterator[None]:
    """Within the block, hand the GIL over within ``SWITCH_INTERVAL_S`` (when ``on``)."""
    if not on:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class Dispatcher:
    """One copy's load generator: the requests of a Poisson or constant stream at ``rate_per_s``,
    put on ``requests`` at their scheduled times, never waiting for a completion."""

    def __init__(self, rate_per_s: float, arrivals: str, *, workers: int, quota: int,
                 seed: int = SEED, phase: float = 0.0) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate must be positive, not {rate_per_s!r}")
        self.rate_per_s = rate_per_s
        self.arrivals = arrivals
        self.workers = workers
        self.quota = quota
        self.seed = seed
        #: Where in its gap a constant stream starts (0..1): copies spread theirs evenly.
        self.phase = phase
        self.requests: "queue.SimpleQueue[int]" = queue.SimpleQueue()
        #: Ends dispatching: a stop, or the end of measuring (the workers serve what was sent).
        self.halt = StopSignal()
        self.recorder = Recorder(2)
        self.paused_ns = 0

    @classmethod
    def for_copy(cls, config: RunConfig, copy_index: int, quota: int) -> "Dispatcher":
        """The dispatcher of copy ``copy_index``: its share of the configuration's rate."""
        return cls(float(config.rate or 0.0) / config.copies, config.arrivals,
                   workers=config.workers_per_copy, quota=quota, seed=SEED + copy_index,
                   phase=copy_index / config.copies)

    def schedule(self, start_ns: int) -> Iterator[List[int]]:
        """Scheduled instants (ns, absolute), ``SCHEDULE_BLOCK`` at a time."""
        gap = 1e9 / self.rate_per_s
        if self.arrivals == "constant":
            k = 0
            while True:
                times = (np.arange(k, k + SCHEDULE_BLOCK) + self.phase) * gap
                k += SCHEDULE_BLOCK
                yield (start_ns + np.round(times)).astype(np.int64).tolist()
        rng = np.random.default_rng(self.seed)
        offset = 0.0
        while True:
            times = offset + np.cumsum(rng.exponential(gap, SCHEDULE_BLOCK))
            offset = float(times[-1])
            yield (start_ns + np.round(times)).astype(np.int64).tolist()

    def run(self, start_ns: int, deadline_ns: int) -> None:
        """Dispatch until the deadline, the quota or a halt; then tell every worker no request
        will follow (they serve what was sent first)."""
        now = perf_counter_ns
        put = self.requests.put
        backlog = self.requests.qsize
        halt = self.halt
        recorder = self.recorder
        size = recorder.chunk_size
        chunk = recorder.new_chunk()
        dues, sents = chunk[DUE], chunk[SENT]
        sent = i = 0
        slack_timers()
        horizon = now() + LEAD_NS
        try:
            for block in self.schedule(start_ns):
                for due in block:
                    if due >= deadline_ns or sent >= self.quota or halt.requested:
                        return
                    if due > horizon:
                        release(due - REFILL_NS, halt)
                        if halt.requested:
                            return
                        horizon = now() + LEAD_NS
                    if backlog() >= MAX_BACKLOG:
                        self._pause(backlog, deadline_ns)
                    t = now()
                    put(due)
                    dues[i] = due
                    sents[i] = t
                    sent += 1
                    recorder.written = sent
                    i += 1
                    if i == size:
                        chunk = recorder.new_chunk()
                        dues, sents = chunk[DUE], chunk[SENT]
                        i = 0
        finally:
            recorder.end_ns = now()
            for _ in range(self.workers):
                put(END_OF_REQUESTS)

    def _pause(self, backlog: Callable[[], int], deadline_ns: int) -> None:
        began = perf_counter_ns()
        while (backlog() >= MAX_BACKLOG * 9 // 10 and not self.halt.requested
               and perf_counter_ns() < deadline_ns):
            self.halt.wait(0.001)
        self.paused_ns += perf_counter_ns() - began

    def end(self) -> None:
        """Stop dispatching; the workers serve what was sent, then end."""
        self.halt.request()

    def stop(self) -> None:
        """Stop dispatching and wake every worker waiting for a request."""
        self.halt.request()
        for _ in range(self.workers):
            self.requests.put(END_OF_REQUESTS)


def release(when_ns: int, halt: StopSignal) -> None:
    """Sleep until about ``when_ns`` (a little late is fine: the request is not due yet)."""
    while not halt.requested:
        left = when_ns - perf_counter_ns()
        if left <= 0:
            return
        if left > 2_000_000:
            halt.wait(min((left - 1_000_000) / 1e9, 0.05))
        else:
            time.sleep(left / 1e9)


class DispatchLog:
    """What the copies' dispatchers did, gathered by the engine: intended against achieved
    rate, and the send lag (sent minus scheduled) of every request."""

    def __init__(self, config: RunConfig, start_ns: int, cap: int) -> None:
        self.config = config
        self.start_ns = start_ns
        self.sent = 0
        self.first_sent: Optional[int] = None
        self.last_sent: Optional[int] = None
        self.lag = SampleStream(cap)

    def add(self, records: np.ndarray) -> None:
        """Dispatch records ``(2, n)``: DUE and SENT clock readings."""
        if not records.shape[1]:
            return
        self.sent += int(records.shape[1])
        sent = records[SENT]
        low, high = int(sent.min()), int(sent.max())
        self.first_sent = low if self.first_sent is None else min(self.first_sent, low)
        self.last_sent = high if self.last_sent is None else max(self.last_sent, high)
        self.lag.add(np.maximum(sent - records[DUE], 0))

    def report(self, served: int, duration_s: float) -> Tuple[Dict[str, Any], List[str]]:
        """``details["open_loop"]`` and the warnings of the run."""
        config = self.config
        rate = float(config.rate or 0.0)
        gap_us = 1e6 * config.copies / rate
        out: Dict[str, Any] = {
            "arrivals": config.arrivals, "intended_rate_per_s": rate,
            "sent": self.sent, "served": served, "unserved": max(self.sent - served, 0),
            "achieved_rate_per_s": served / duration_s if duration_s > 0 else None,
            "offered_rate_per_s": None, "send_lag_us": None,
            "dispatcher_gap_us": gap_us, "behind": False,
        }
        warnings: List[str] = []
        if self.sent >= 2 and self.last_sent is not None and self.first_sent is not None:
            span_s = (self.last_sent - self.first_sent) / 1e9
            # n requests sent span n - 1 gaps: the rate the generator achieved.
            out["offered_rate_per_s"] = (self.sent - 1) / span_s if span_s > 0 else None
        if self.lag.count:
            p50, p99, most = (v / 1e3 for v in self.lag.quantiles((0.5, 0.99, 1.0)))
            out["send_lag_us"] = {"p50": p50, "p99": p99, "max": most}
            if p99 > LAG_FRACTION * gap_us:
                out["behind"] = True
                warnings.append(
                    f"the load generator fell behind its schedule: send lag p99 {p99:,.0f} us "
                    f"against {gap_us:,.0f} us between a copy's requests (the offered load is "
                    f"not the one asked for; fewer copies or a lower rate)")
        offered = out["offered_rate_per_s"]
        if offered is not None and self.sent >= 100:
            slack = max(0.05, 4.0 / self.sent ** 0.5)  # a Poisson count's own spread
            if offered < (1.0 - slack) * rate:
                warnings.append(f"requests were sent at {offered:,.1f}/s, not the "
                                f"{rate:,.1f}/s asked for")
        if out["unserved"]:
            warnings.append(f"{out['unserved']:,} of {self.sent:,} requests sent were not served "
                            "when measuring ended: the copies could not keep up with the rate "
                            "(their latency is missing from the figures)")
        return out, warnings


class Collector:
    """A configuration's streams while it is measured, fed from its copies."""

    def __init__(self, index: int, sink: Callable[[Any], None], rule: StopRule,
                 config: RunConfig, start_ns: int, cap: int,
                 abandon_p99_above_ms: Optional[float] = None) -> None:
        self.index = index
        self.sink = sink
        self.rule = rule
        self.start_ns = start_ns
        self.streams = ConfigStreams(cap)
        self.dispatch = DispatchLog(config, start_ns, cap) if config.open_loop else None
        #: Each copy's first sample start (ns), for the start spread across copies.
        self.first_starts: Dict[int, int] = {}
        self._checked_s = -EARLY_CHECK_S
        self.width_pct: Optional[float] = None
        self.closeness = 0.0
        #: When early stop was met (s since measuring began), None while it is not.
        self.stopped_early_s: Optional[float] = None
        #: Abandon the configuration once p99 is above this bound with confidence (ms).
        self.abandon_above_ms = abandon_p99_above_ms
        #: ``{"p99_low_ms", "bound_ms", "after_s", "samples"}`` once abandoned, else None.
        self.abandoned: Optional[Dict[str, Any]] = None

    @property
    def count(self) -> int:
        return self.streams.count

    def due(self) -> bool:
        """Whether the configuration may end now: its sample count reached, early stop, or it
        was abandoned (its p99 already above a search's bound)."""
        rule = self.rule
        return bool((rule.samples and self.count >= rule.samples)
                    or self.stopped_early_s is not None or self.abandoned is not None)

    def collect(self, copies: List[Any]) -> None:
        blocks = []
        for i, each in enumerate(copies):
            block = each.drain()
            if block.size:
                if i not in self.first_starts:
                    self.first_starts[i] = int(block.start_ns.min())
                blocks.append(block)
            if self.dispatch is not None:
                self.dispatch.add(each.drain_sent())
        elapsed = (perf_counter_ns() - self.start_ns) / 1e9
        if blocks:
            new = Block.concat(blocks).shifted(self.start_ns)
            self.streams.add(new)
            self.sink(Samples(index=self.index, block=new, elapsed_s=elapsed))
        rule = self.rule
        if elapsed - self._checked_s >= EARLY_CHECK_S and (
                rule.early_stop_pct is not None or self.abandon_above_ms is not None):
            self._checked_s = elapsed
            if rule.early_stop_pct is not None:
                self._check_early_stop(elapsed)
            if self.abandon_above_ms is not None and self.abandoned is None:
                self._check_abandon(elapsed)
        fractions = [self.closeness] if rule.early_stop_pct is not None else []
        if rule.duration_s:
            fractions.append(elapsed / rule.duration_s)
        if rule.samples:
            fractions.append(self.count / rule.samples)
        fraction = min(1.0, max(0.0, max(fractions))) if fractions else None
        self.sink(Progress(index=self.index, elapsed_s=max(elapsed, 0.0), samples=self.count,
                           fraction=fraction, early_stop=self.width_pct,
                           early_stop_target=rule.early_stop_pct))

    def _check_early_stop(self, elapsed: float, final: bool = False) -> None:
        self._checked_s = elapsed
        rule, count = self.rule, self.count
        found = self.streams.latency.quantile_interval(0.99) if count else None
        self.width_pct = None if found is None else rule.interval_width_pct(*found)
        self.closeness = rule.early_stop_closeness(elapsed, count, self.width_pct)
        if (not final and self.stopped_early_s is None and self.width_pct is not None
                and rule.may_stop_early(elapsed, count)
                and self.width_pct <= float(rule.early_stop_pct or 0.0)):
            self.stopped_early_s = elapsed

    def _check_abandon(self, elapsed: float) -> None:
        count, bound = self.count, float(self.abandon_above_ms or 0.0)
        if elapsed < ABANDON_MIN_S or count < ABANDON_MIN_SAMPLES:
            return
        low = self.streams.latency.quantile_lower(0.99, ABANDON_CONFIDENCE)
        if low is not None and low / 1e6 > bound:
            self.abandoned = {"p99_low_ms": low / 1e6, "bound_ms": bound,
                              "after_s": round(elapsed, 3), "samples": count,
                              "confidence": ABANDON_CONFIDENCE}

    def report(self, duration_s: float) -> Tuple[Dict[str, Any], List[str]]:
        """What the collector adds to the result's details, and its warnings."""
        details: Dict[str, Any] = {}
        warnings: List[str] = []
        rule = self.rule
        if rule.early_stop_pct is not None:
            if self.stopped_early_s is None and self.count:
                self._check_early_stop(duration_s, final=True)  # the width at the end
            details["early_stop"] = {
                "target_pct": rule.early_stop_pct, "min_s": rule.early_stop_min_s,
                "min_samples": rule.early_stop_min_samples,
                "stopped_early": self.stopped_early_s is not None,
                "at_s": self.stopped_early_s, "p99_interval_pct": self.width_pct,
            }
            if self.stopped_early_s is None:
                width = "unbounded" if self.width_pct is None else f"+-{self.width_pct:.1f} %"
                warnings.append(f"early stop: p99's interval was still {width} (target "
                                f"+-{rule.early_stop_pct:g} %) when measuring ended")
        if self.abandoned is not None:
            details["abandoned"] = dict(self.abandoned)
        if self.dispatch is not None:
            details["open_loop"], more = self.dispatch.report(self.count, duration_s)
            warnings.extend(more)
        return details, warnings
