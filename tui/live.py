"""The app's model of a run, built only from engine events; no Textual here.

The engine calls its sink from its own threads, about ten times a second, and a sink must
never block. ``EventBuffer`` is that sink: it appends under a lock and returns. The app drains
the buffer on a timer in the UI thread and hands each event to ``LiveRun.apply``, which keeps
what the panes draw: per configuration the samples so far (exactly up to a cap, then in the
engine's log-bucketed histogram, for the histogram pane and the live percentiles), a timeline
of windowed p99 and throughput, warm-up facts and the final result.
So the sample rate and the redraw rate stay independent, and nothing here runs in a timing loop.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np

from latency_tui.core.events import (
    ConfigFinished,
    ConfigStarted,
    Event,
    ModelLoaded,
    PhaseChanged,
    Progress,
    RunFinished,
    RunStarted,
    Samples,
    WarmupFinished,
)
from latency_tui.core.measurement import ConfigResult, LatencySummary, Throughput
from latency_tui.core.specs import RunConfig, RunPlan

from latency_tui.core.histogram import LogHistogram
from latency_tui.core.stats import summarize_histogram

from .format import fmt_clock
from .livestats import Distribution, distribution_of, summarize_ns


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


@dataclass(frozen=True)
class TimelinePoint:
    """One window of a configuration's measurement: its p99 and its throughput."""

    elapsed_s: float
    p99_ms: float
    inferences_per_s: float
    samples_per_s: float


#: Width of a timeline window, in seconds of measuring.
TIMELINE_WINDOW_S = 0.5
#: Samples kept exactly per configuration; past it only the log-bucketed histogram (as the
#: engine does past its sample cap), so a live redraw never sorts millions of samples.
LIVE_EXACT_CAP = 20_000


class LiveConfig:
    """One configuration as the display knows it, from "pending" to its final result."""

    def __init__(self, key: str, index: int, config: RunConfig, cap: int = LIVE_EXACT_CAP):
        self.key = key
        self.index = index
        self.config = config
        self.phase = "pending"
        self.detail = ""
        self.count = 0
        self.elapsed_s = 0.0
        self.fraction: Optional[float] = None
        self.first_inference_ms: Optional[float] = None
        self.warmup_iterations: Optional[int] = None
        self.warmup_stable: Optional[bool] = None
        self.warmup_s: Optional[float] = None
        self.result: Optional[ConfigResult] = None
        #: A notice about an unstable warm-up went out already (the result repeats it).
        self.warned_warmup = False
        self.timeline: List[TimelinePoint] = []
        self._cap = cap
        self._chunks: Optional[List[np.ndarray]] = []
        self._merged: Optional[np.ndarray] = None
        self._histogram: Optional[LogHistogram] = None
        self._window: List[np.ndarray] = []
        self._window_start = 0.0
        self._summary_at = -1
        self._summary: Optional[LatencySummary] = None

    # -- feeding -------------------------------------------------------------------------
    def add_samples(self, latencies_ns: Any, elapsed_s: float) -> None:
        chunk = np.asarray(latencies_ns, dtype=np.int64)
        if not chunk.size:
            return
        self.count += int(chunk.size)
        self.elapsed_s = max(self.elapsed_s, elapsed_s)
        self._add_to_window(chunk, elapsed_s)
        if self._histogram is None:
            self._histogram = LogHistogram()
        self._histogram.add(chunk)
        if self._chunks is not None:
            if self.count <= self._cap:
                self._chunks.append(chunk)
                self._merged = None
            else:  # past the cap: the histogram alone from now on
                self._chunks, self._merged = None, None

    def _add_to_window(self, chunk: np.ndarray, elapsed_s: float) -> None:
        self._window.append(chunk)
        span = elapsed_s - self._window_start
        if span < TIMELINE_WINDOW_S:
            return
        window = np.concatenate(self._window)
        self._window, self._window_start = [], elapsed_s
        rate = window.size / span
        self.timeline.append(TimelinePoint(
            elapsed_s, float(np.percentile(window, 99)) / 1e6, rate,
            rate * self.config.batch_size,
        ))

    # -- reading -------------------------------------------------------------------------
    @property
    def exact(self) -> bool:
        """False once past the cap, when live figures come from the log-bucketed histogram."""
        return self._chunks is not None

    def samples_ns(self) -> np.ndarray:
        """The samples kept exactly (empty past the cap)."""
        if self._merged is None:
            parts = self._chunks or []
            self._merged = np.concatenate(parts) if parts else np.empty(0, np.int64)
            if self._chunks:
                self._chunks = [self._merged]
        return self._merged

    def distribution(self) -> Optional[Distribution]:
        """What the histogram pane draws: exact samples, or bucket midpoints with counts."""
        if self.count == 0:
            return None
        if self.exact:
            return Distribution(self.samples_ns() / 1e6)
        return distribution_of(self._histogram)  # type: ignore[arg-type]

    def summary(self) -> Optional[LatencySummary]:
        """The final summary once finished, else the live one (recomputed only on new data)."""
        if self.result is not None and self.result.latency is not None:
            return self.result.latency
        if self.count == 0:
            return None
        if self._summary_at != self.count:
            if self.exact:
                self._summary = summarize_ns(self.samples_ns())
            else:
                self._summary = summarize_histogram(self._histogram)  # type: ignore[arg-type]
            self._summary_at = self.count
        return self._summary

    def throughput(self) -> Optional[Throughput]:
        if self.result is not None and self.result.throughput is not None:
            return self.result.throughput
        if self.count == 0 or self.elapsed_s <= 0:
            return None
        rate = self.count / self.elapsed_s
        return Throughput(rate, rate * self.config.batch_size)

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

    def __init__(self, number: int, plan: RunPlan):
        self.number = number
        self.plan = plan
        self.host: Dict[str, Any] = {}
        self.model: Dict[str, Any] = {}
        self.state = "starting"  # starting, running, stopping, finished, cancelled, failed
        self.current: Optional[int] = None
        self.configs: Dict[int, LiveConfig] = {
            i: LiveConfig(self.key(i), i, config) for i, config in enumerate(plan.configs)
        }

    def key(self, index: int) -> str:
        return f"{self.number}:{index}"

    @property
    def total(self) -> int:
        return len(self.configs)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "stopping")

    def current_config(self) -> Optional[LiveConfig]:
        return self.configs.get(self.current) if self.current is not None else None

    def timeline(self) -> List[TimelinePoint]:
        points: List[TimelinePoint] = []
        for index in sorted(self.configs):
            points.extend(self.configs[index].timeline)
        return points

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
                live.add_samples(event.latencies_ns, event.elapsed_s)
            return []
        if isinstance(event, Progress):
            live = self.configs.get(event.index)
            if live is not None:
                live.elapsed_s = max(live.elapsed_s, event.elapsed_s)
                live.fraction = event.fraction
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
            if live is None:  # a plan the engine expanded differently: follow the engine
                live = self.configs[event.index] = LiveConfig(
                    self.key(event.index), event.index, event.config
                )
            live.phase = "loading"
            self.current = event.index
            return []
        if isinstance(event, PhaseChanged):
            live = self.configs.get(event.index)
            if live is not None and live.result is None:
                live.phase, live.detail = event.phase, event.detail
            return []
        if isinstance(event, WarmupFinished):
            return self._warmup(event)
        if isinstance(event, ConfigFinished):
            return self._finished(event)
        if isinstance(event, RunFinished):
            self.finish("cancelled" if event.cancelled else "finished")
            return []
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
        return [
            Notice(
                "warning",
                f"{live.config.label}: warm-up never stabilised ({event.iterations} iterations "
                f"in {event.duration_s:.1f} s); measuring anyway",
            )
        ]

    def _finished(self, event: ConfigFinished) -> List[Notice]:
        result = event.result
        live = self.configs.get(event.index)
        if live is None:
            live = self.configs[event.index] = LiveConfig(
                self.key(event.index), event.index, result.config
            )
        live.result = result
        live.phase = result.status
        if result.first_inference_ms is not None:
            live.first_inference_ms = result.first_inference_ms
        return result_notices(result, skip_warmup=live.warned_warmup)


def result_notices(result: ConfigResult, skip_warmup: bool = False) -> List[Notice]:
    """Warnings and the error of one result, each prefixed with its configuration;
    ``skip_warmup`` leaves out the warm-up warning already shown when warm-up ended."""
    label = result.config.label
    notices = []
    if result.status == "failed":
        notices.append(Notice("error", f"{label}: failed: {result.error or 'unknown error'}"))
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


def busy_host_notices(host: Dict[str, Any]) -> List[Notice]:
    """Warn when the host was already loaded before the run began: figures will be noisy."""
    load = host.get("load_average")
    cpus = host.get("logical_cpus") or os.cpu_count() or 1
    if not load:
        return []
    one_minute = float(load[0])
    if one_minute >= max(1.0, 0.5 * cpus):
        return [
            Notice(
                "warning",
                f"busy host: load average {one_minute:.2f} on {cpus} CPUs before the run; "
                "latencies may be noisy",
            )
        ]
    return []


def estimate_remaining(run: LiveRun) -> Optional[float]:
    """Seconds left in the run: the current configuration's rest plus the others' duration.

    Warm-up and loading of later configurations are unknown; the estimate counts measuring
    time only, so the header prefixes it with "~".
    """
    duration = run.plan.stop.duration_s
    live = run.current_config()
    if live is None:
        return None
    if duration is not None:
        current = max(0.0, duration - live.elapsed_s)
        per_config = duration
    elif live.fraction and live.fraction > 0:
        per_config = live.elapsed_s / live.fraction
        current = per_config - live.elapsed_s
    else:
        return None
    left = sum(1 for c in run.configs.values() if c.phase == "pending")
    return current + left * per_config


def describe_remaining(run: LiveRun) -> str:
    remaining = estimate_remaining(run)
    return "" if remaining is None else f"~{fmt_clock(remaining)} left"
