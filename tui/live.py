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
import threading
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

from latency_tui.core.api import ConfigResult, ConfigStreams, LatencySummary, Throughput, Timeline
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, Event, ModelLoaded, PhaseChanged, Progress, RunFinished,
    RunStarted, Samples, Utilisation, WarmupFinished,
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
        self.first_inference_ms: Optional[float] = None
        self.warmup_iterations: Optional[int] = None
        self.warmup_stable: Optional[bool] = None
        self.warmup_s: Optional[float] = None
        self.result: Optional[ConfigResult] = None
        #: A notice about an unstable warm-up went out already (the result repeats it).
        self.warned_warmup = False
        self.streams = ConfigStreams(cap)

    @classmethod
    def of_result(cls, key: str, index: int, result: ConfigResult) -> "LiveConfig":
        """A finished configuration of a saved session (no samples, only its figures)."""
        live = cls(key, index, result.config, cap=0)
        live.result, live.phase = result, result.status
        live.first_inference_ms = result.first_inference_ms
        live.warmup_iterations = result.warmup_iterations or None
        live.warmup_stable = result.warmup_stable
        live.elapsed_s = result.duration_s
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

    def __init__(self, number: int, plan: RunPlan) -> None:
        self.number = number
        self.plan = plan
        self.host: Dict[str, Any] = {}
        self.model: Dict[str, Any] = {}
        self.state = "starting"  # starting, running, stopping, finished, cancelled, failed
        self.current: Optional[int] = None
        #: The monitors' newest readings from the engine: ((name, readings), ...).
        self.utilisation: Optional[Tuple[Any, ...]] = None
        self.configs: Dict[int, LiveConfig] = {
            i: self._new(i, config) for i, config in enumerate(plan.configs)
        }

    def key(self, index: int) -> str:
        return f"{self.number}:{index}"

    def _new(self, index: int, config: RunConfig) -> LiveConfig:
        return LiveConfig(self.key(index), index, config, cap=self.plan.sample_cap)

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
            return []
        if isinstance(event, Progress):
            live = self.configs.get(event.index)
            if live is not None:
                live.elapsed_s = max(live.elapsed_s, event.elapsed_s)
                live.fraction = event.fraction
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
            if live is None:  # a strategy's configuration, in no plan: follow the engine
                live = self.configs[event.index] = self._new(event.index, event.config)
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
        if result.first_inference_ms is not None:
            live.first_inference_ms = result.first_inference_ms
        return result_notices(result, skip_warmup=live.warned_warmup)


def shown_after_run(configs: Iterable[LiveConfig]) -> List[LiveConfig]:
    """Ended configurations, those with figures last: the last one is what the panes show
    after a run (a failed one has nothing to draw)."""
    done = [c for c in configs if c.result is not None]
    return [c for c in done if c.result.latency is None] + \
        [c for c in done if c.result.latency is not None]


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
        return [Notice("warning", f"busy host: load average {one_minute:.2f} on {cpus} CPUs "
                                  "before the run; latencies may be noisy")]
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
