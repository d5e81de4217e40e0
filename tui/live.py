"""The app's model of a run, built only from engine events; no Textual here.

The engine calls its sink from its own thread about ten times a second, and a sink must never
block. ``EventBuffer`` is that sink: it appends under a lock and returns. The app drains the
buffer on a timer in the UI thread and hands each event to ``LiveRun.apply``, which keeps what
the panes draw: per configuration the engine's own ``ConfigStreams`` (the same store, cap and
statistics the engine uses, so a live p99 and its interval mean what the final ones mean), the
per-second timeline, warm-up facts, the monitors' latest readings and the final result.
So the sample rate and the redraw rate stay independent, and nothing here runs in a timing loop.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from latency_tui.core.api import ConfigResult, ConfigStreams, LatencySummary, Throughput, Timeline
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, Event, ModelLoaded, PhaseChanged, Progress, RunFinished,
    RunStarted, Samples, SearchUpdated, Utilisation, WarmupFinished,
)
from latency_tui.core.specs import RunConfig, RunPlan

from .format import fmt_clock


class EventBuffer:
    """A non-blocking event sink: engine threads append, the UI thread drains."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: List[Event] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> List[Event]:
        with self._lock:
            events, self._events = self._events, []
        return events


class Notice(NamedTuple):
    level: str  # "info" | "warning" | "error"
    text: str


class LiveConfig:
    """One configuration as the display knows it, from "pending" to its final result."""

    def __init__(self, key: str, index: int, config: RunConfig, cap: int = 2_000_000) -> None:
        self.key = key
        self.index = index
        self.config = config
        self.phase = "pending"
        self.detail = ""
        self.elapsed_s = 0.0
        self.fraction: Optional[float] = None
        #: Early stop: p99's interval half-width and the target it stops at (% of p99).
        self.early_stop: Optional[Tuple[Optional[float], float]] = None
        self.first_inference_ms: Optional[float] = None
        self.warmup_iterations: Optional[int] = None
        self.warmup_stable: Optional[bool] = None
        self.warmup_s: Optional[float] = None
        self.result: Optional[ConfigResult] = None
        #: A notice about an unstable warm-up went out already (the result repeats it).
        self.warned_warmup = False
        self.streams = ConfigStreams(cap)
        #: The session's id of the run this configuration belongs to (shown in the table).
        self.run_id: Optional[int] = None
        #: When (the app's clock) it started, began measuring and finished: the time left.
        self.started_at: Optional[float] = None
        self.measuring_at: Optional[float] = None
        self.finished_at: Optional[float] = None

    @classmethod
    def of_result(cls, key: str, index: int, result: ConfigResult) -> "LiveConfig":
        """A finished configuration of a saved session (no samples, only its figures)."""
        live = cls(key, index, result.config, cap=0)
        live.result, live.phase = result, result.status
        live.first_inference_ms = result.first_inference_ms
        live.warmup_iterations = result.warmup_iterations or None
        live.warmup_stable = result.warmup_stable
        live.elapsed_s = result.duration_s
        run = result.trial.get("run") if isinstance(result.trial, dict) else None
        live.run_id = run if isinstance(run, int) and not isinstance(run, bool) else None
        return live

    # -- reading -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Samples measured so far (or, for a saved result, measured in all)."""
        if self.streams.count == 0 and self.result is not None:
            return self.result.samples
        return self.streams.count

    @property
    def has_samples(self) -> bool:
        return self.streams.count > 0

    def summary(self) -> Optional[LatencySummary]:
        """The final summary once finished, else the live one (recomputed only on new data)."""
        if self.result is not None and self.result.latency is not None:
            return self.result.latency
        return self.streams.latency.summary()

    def throughput(self) -> Optional[Throughput]:
        if self.result is not None and self.result.throughput is not None:
            return self.result.throughput
        count = self.streams.count
        if count == 0 or self.elapsed_s <= 0:
            return None
        rate = count / self.elapsed_s
        return Throughput(rate, rate * self.config.batch_size)

    def timeline(self) -> Optional[Timeline]:
        """Per-second figures: the saved ones once finished; while measuring, the seconds that
        are complete (the current one would read low)."""
        if self.result is not None and self.result.timeline is not None:
            return self.result.timeline
        if self.streams.count == 0:
            return None
        built = self.streams.timeline.build()
        whole = int(self.elapsed_s // built.bucket_s)
        return Timeline(built.bucket_s, built.inferences[:whole], built.p50_ms[:whole],
                        built.p99_ms[:whole], built.max_ms[:whole], built.relative_error)

    @property
    def status(self) -> str:
        """A word (never colour alone) for the table: pending, loading, ..., finished, failed."""
        if self.result is not None:
            return self.result.status
        return self.phase

    @property
    def running(self) -> bool:
        return self.result is None and self.phase not in ("pending", "skipped")


class LiveRun:
    """A run: its plan, host, model facts and one ``LiveConfig`` per configuration."""

    def __init__(self, number: int, plan: RunPlan,
                 clock: Optional[Callable[[], float]] = None) -> None:
        self.number = number
        self.plan = plan
        #: Times each configuration's phases, for the time left (None: measuring time only).
        self.clock = clock
        #: The session's id of this run, once it has joined one.
        self.run_id: Optional[int] = None
        #: Where the traceback of a failed configuration can be read, for its notice.
        self.traceback_where = ""
        self.host: Dict[str, Any] = {}
        self.model: Dict[str, Any] = {}
        self.state = "starting"  # starting, running, stopping, finished, cancelled, failed
        self.current: Optional[int] = None
        #: The monitors' newest readings from the engine: ((name, readings), ...).
        self.utilisation: Optional[Tuple[Any, ...]] = None
        #: A search's outcome so far (``SearchUpdated``); a search's trials are not the plan's.
        self.search: Optional[Dict[str, Any]] = None
        self.configs: Dict[int, LiveConfig] = {} if plan.search else {
            i: self._new(i, config) for i, config in enumerate(plan.configs)
        }

    def key(self, index: int) -> str:
        return f"{self.number}:{index}"

    def _new(self, index: int, config: RunConfig) -> LiveConfig:
        live = LiveConfig(self.key(index), index, config, cap=self.plan.sample_cap)
        live.run_id = self.run_id
        return live

    def set_run_id(self, run_id: Optional[int]) -> None:
        self.run_id = run_id
        for live in self.configs.values():
            live.run_id = run_id

    def _now(self) -> Optional[float]:
        return self.clock() if self.clock is not None else None

    def _measuring(self, live: LiveConfig) -> None:
        if live.measuring_at is None:
            live.measuring_at = self._now()

    @property
    def total(self) -> int:
        return len(self.configs)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "stopping")

    def current_config(self) -> Optional[LiveConfig]:
        return self.configs.get(self.current) if self.current is not None else None

    def finish(self, state: str) -> None:
        """End the run; configurations that never started are marked skipped."""
        self.state = state
        for live in self.configs.values():
            if live.result is None:
                live.phase = "skipped" if live.phase == "pending" else "cancelled"

    def apply(self, event: Event) -> List[Notice]:
        """Fold one event in; return the notices it raises (warnings, errors)."""
        if isinstance(event, Samples):
            live = self.configs.get(event.index)
            if live is not None:
                live.streams.add(event.block)
                live.elapsed_s = max(live.elapsed_s, event.elapsed_s)
                self._measuring(live)
            return []
        if isinstance(event, Progress):
            live = self.configs.get(event.index)
            if live is not None:
                live.elapsed_s = max(live.elapsed_s, event.elapsed_s)
                live.fraction = event.fraction
                if event.early_stop_target is not None:
                    live.early_stop = (event.early_stop, event.early_stop_target)
                self._measuring(live)
            return []
        if isinstance(event, Utilisation):
            self.utilisation = event.groups
            return []
        if isinstance(event, RunStarted):
            if self.state == "starting":
                self.state = "running"
            self.host = dict(event.host)
            return busy_host_notices(self.host)
        if isinstance(event, ModelLoaded):
            if not self.model:
                self.model = dict(event.model)
            return []
        if isinstance(event, ConfigStarted):
            live = self.configs.get(event.index)
            if live is None or live.config != event.config:  # a search's: in no plan
                live = self.configs[event.index] = self._new(event.index, event.config)
            live.phase = "loading"
            live.started_at = self._now()
            self.current = event.index
            return []
        if isinstance(event, PhaseChanged):
            live = self.configs.get(event.index)
            if live is not None and live.result is None:
                live.phase, live.detail = event.phase, event.detail
                if event.phase == "measuring":
                    self._measuring(live)
            return []
        if isinstance(event, WarmupFinished):
            return self._warmup(event)
        if isinstance(event, ConfigFinished):
            return self._finished(event)
        if isinstance(event, RunFinished):
            self.finish("cancelled" if event.cancelled else "finished")
            return []
        if isinstance(event, SearchUpdated):
            self.search = event.outcome
        return []

    def _warmup(self, event: WarmupFinished) -> List[Notice]:
        live = self.configs.get(event.index)
        if live is None:
            return []
        live.first_inference_ms = event.first_inference_ms
        live.warmup_iterations = event.iterations
        live.warmup_stable = event.stable
        live.warmup_s = event.duration_s
        if event.stable:
            return []
        live.warned_warmup = True
        return [Notice("warning", f"{live.config.label}: warm-up never stabilised "
                                  f"({event.iterations} iterations in {event.duration_s:.1f} s); "
                                  "measuring anyway")]

    def _finished(self, event: ConfigFinished) -> List[Notice]:
        result = event.result
        live = self.configs.get(event.index)
        if live is None:
            live = self.configs[event.index] = self._new(event.index, result.config)
        live.result = result
        live.phase = result.status
        live.finished_at = self._now()
        if result.first_inference_ms is not None:
            live.first_inference_ms = result.first_inference_ms
        return result_notices(result, skip_warmup=live.warned_warmup, where=self.traceback_where)


def shown_after_run(configs: Iterable[LiveConfig]) -> List[LiveConfig]:
    """Ended configurations, those with figures last: the last one is what the panes show
    after a run (a failed one has nothing to draw)."""
    done = [c for c in configs if c.result is not None]
    return [c for c in done if c.result.latency is None] + \
        [c for c in done if c.result.latency is not None]


def result_notices(result: ConfigResult, skip_warmup: bool = False, where: str = ""
                   ) -> List[Notice]:
    """Warnings and the error of one result, each prefixed with its configuration;
    ``skip_warmup`` leaves out the warm-up warning already shown when warm-up ended. A failure
    with a traceback names its last frame and ``where`` the whole traceback can be read."""
    label = result.config.label
    notices = []
    if result.status == "failed":
        text = f"{label}: failed: {result.error or 'unknown error'}"
        if result.traceback and where:
            frame = last_frame(result.traceback)
            text += f" ({'at ' + frame + '; ' if frame else ''}traceback in {where})"
        notices.append(Notice("error", text))
    elif result.status == "cancelled":
        notices.append(Notice("info", f"{label}: cancelled after {result.samples:,} samples"))
    seen = set()
    extra = result.latency.warnings if result.latency is not None else ()
    for warning in tuple(result.warnings) + tuple(extra):
        if skip_warmup and warning.startswith("warm-up"):
            continue
        if warning not in seen:
            seen.add(warning)
            notices.append(Notice("warning", f"{label}: {warning}"))
    return notices


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def last_frame(traceback: str) -> str:
    """Where a traceback ends: "workloads.py:123" (the file's name only), or ""."""
    frames = _FRAME.findall(traceback or "")
    if not frames:
        return ""
    path, line = frames[-1]
    return f"{os.path.basename(path)}:{line}"


def busy_host_notices(host: Dict[str, Any]) -> List[Notice]:
    """Warn when the host was already loaded before the run began: figures will be noisy."""
    load = host.get("load_average")
    cpus = host.get("logical_cpus") or os.cpu_count() or 1
    if not load:
        return []
    one_minute = float(load[0])
    if one_minute >= max(1.0, 0.5 * cpus):
        return [Notice("warning", f"busy host: load average {one_minute:.2f} on {cpus} CPUs "
                                  "before the run; latencies may be noisy")]
    return []


def estimate_remaining(run: LiveRun, now: Optional[float] = None) -> Optional[float]:
    """Seconds left in the run: the current configuration's rest plus the others' whole time."""
    found = estimate(run, now)
    return None if found is None else found[0]


def estimate(run: LiveRun, now: Optional[float] = None) -> Optional[Tuple[float, bool]]:
    """(seconds left, whether that is only a lower bound).

    Each configuration takes its measuring time plus its setup (loading, compiling, warm-up,
    and the figures at the end). With a clock (``LiveRun.clock``), the setup is the mean of the
    configurations that finished; before any has, the setup of the current one so far, which
    only grows while it loads: then the time left is a lower bound. Without a clock, measuring
    time only.
    """
    live = run.current_config()
    if live is None:
        return None
    measure = _measuring_s(run, live)
    if measure is None:
        return None
    if now is None and run.clock is not None:
        now = run.clock()
    measuring = live.phase in ("measuring", "stopping") or live.elapsed_s > 0
    setups = [c.finished_at - c.started_at - c.result.duration_s for c in run.configs.values()
              if c.result is not None and c.result.status == "finished"
              and c.finished_at is not None and c.started_at is not None]
    so_far = 0.0
    if now is not None and live.started_at is not None:
        so_far = (live.measuring_at if measuring and live.measuring_at is not None
                  else now) - live.started_at
    lower = False
    if setups:
        setup = max(0.0, sum(setups) / len(setups))
    else:
        setup, lower = max(0.0, so_far), not measuring and now is not None
    if measuring:
        current = max(0.0, measure - live.elapsed_s)
    else:
        current = max(0.0, setup - so_far) + measure
    left = sum(1 for c in run.configs.values() if c.phase == "pending")
    return current + left * (setup + measure), lower


def _measuring_s(run: LiveRun, live: LiveConfig) -> Optional[float]:
    """How long one configuration measures: the stop rule's duration, else what the current
    one's progress or the finished ones say."""
    duration = run.plan.stop.duration_s
    if duration is not None:
        return duration
    if live.fraction and live.fraction > 0:
        return live.elapsed_s / live.fraction
    done = [c.result.duration_s for c in run.configs.values()
            if c.result is not None and c.result.status == "finished"]
    return sum(done) / len(done) if done else None


def describe_remaining(run: LiveRun, now: Optional[float] = None) -> str:
    found = estimate(run, now)
    if found is None:
        return ""
    remaining, lower = found
    return f"at least {fmt_clock(remaining)} left" if lower else f"~{fmt_clock(remaining)} left"
