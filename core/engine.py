"""The engine: measures configurations and tells the world through events.

``Engine(plan, sink)`` is a function of its plan and its sink (a Ray task could call it).
``run(strategy)`` asks the strategy (a sweep of the plan's configurations by default) for one
configuration at a time and ``measure``s each: the backend compiles the model once for the
configuration, the copies (threads or processes) load it and warm up, measuring starts in every
worker of every copy at one instant, and about ten times a second the collector drains the new
samples into the configuration's streams and emits ``Samples`` and ``Progress``
(``openloop.Collector``). In open loop (``config.rate``) each copy's dispatcher offers the
load and ending measuring early (early stop, the sample count) lets the copies serve what was
already sent; early stop ends a configuration once p99's interval is tight enough, and a search
under a bound (the trial's ``abandon_p99_above_ms``) once p99 is surely above it. A configuration
that fails is recorded as failed (with its kind and traceback) and the next one runs; a stop
request ends the configuration in progress (recorded as cancelled, with what it measured) and
skips the rest. Every wait is bounded: a stop takes effect within ``stop_grace_s`` even when a
device call never returns (a process copy is terminated, a thread copy abandoned); all copies
share that one grace, however many there are.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from time import perf_counter_ns
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .backends import Backend, backend_class, backend_path
from .checks import sync_check
from .copies import ThreadCopy, failure, worker_quotas
from .copyjob import CopyJob, WarmupReport
from .errors import ConfigurationError
from .events import (
    ConfigFinished, ConfigStarted, ModelLoaded, PhaseChanged, RunFinished, RunStarted,
    SearchUpdated, Sink, Utilisation, WarmupFinished,
)
from .host import auto_threads, host_facts
from .measurement import ConfigResult
from .monitors import Monitor, MonitorSampler, default_monitors
from .monitors.sampler import utilisation_warnings
from .noiseneuron import held_cores_noted
from .openloop import Collector, quick_switching
from .procs import ProcessCopy, close_copies
from .repro import run_facts
from .samplestore import store_stream
from .source import ModelSource
from .specs import RunConfig, RunPlan
from .stats import throughput
from .searchspec import strategy_for
from .strategies import Strategy, Sweep

COLLECT_INTERVAL_S = 0.1
PROGRESS_EVERY_S = 5.0  # how often a long compile says how long it has taken
#: How far ahead of now the common start instant is set: long enough for every worker to
#: hear "go" (a message to a process copy takes longer than waking a thread).
START_LEAD_S = {"thread": 0.02, "process": 0.25}
#: After a stop (requested, a failure, the quota, the deadline), how long copies may take to
#: finish their inference before they are terminated (process) or abandoned (thread).
STOP_GRACE_S = 2.0
BackendFactory = Callable[[RunConfig], Backend]


class Stopped(Exception):
    """A stop request arrived while the engine waited on a step it cannot interrupt."""


class Engine:
    """Runs a plan. ``run`` and ``measure`` block (call them from a worker thread); ``stop`` is
    thread-safe and may be called at any time."""

    def __init__(self, plan: RunPlan, sink: Sink, *, monitors: Optional[Sequence[Monitor]] = None,
                 backend_factory: Optional[BackendFactory] = None,
                 stop_grace_s: float = STOP_GRACE_S) -> None:
        self.plan = plan
        device = plan.configs[0].device if plan.configs else "cpu"
        self.sink = held_cores_noted(sink, device)  # NeuronCores held by others, on Neuron
        self.stop_grace_s = stop_grace_s
        self._stop = threading.Event()
        #: The one deadline (``time.monotonic``) all copies in progress share once asked to stop.
        self._stop_by: Optional[float] = None
        self._backend_factory = backend_factory
        #: Thread copies of every configuration share one load of the model.
        self._source = ModelSource(plan.model, plan.inputs)
        self._sampler = MonitorSampler(default_monitors(device) if monitors is None else monitors)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        self._sampler.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- a run ------------------------------------------------------------------------------
    def run(self, strategy: Optional[Strategy] = None) -> Tuple[ConfigResult, ...]:
        """Measure every configuration ``strategy`` proposes (the plan's sweep by default)."""
        plan = self.plan
        strategy = strategy or (strategy_for(plan) if plan.search else Sweep(plan.configs))
        self._sampler.start()
        try:
            host = host_facts()
            host.update(run_facts(plan, host))
            self.sink(RunStarted(plan=plan, host=host, started_at=time.time()))
            results: List[ConfigResult] = []
            while not self._stop.is_set():
                trial = strategy.propose(results)
                outcome = strategy.outcome()
                if outcome is not None:
                    self.sink(SearchUpdated(outcome))
                if trial is None:
                    break
                index = len(results)
                self.sink(ConfigStarted(index=index, total=strategy.total, config=trial.config,
                                        trial=trial.info))
                result = self.measure(trial.config, index=index, trial=trial.info)
                results.append(result)
                self.sink(ConfigFinished(index=index, result=result))
            self.sink(RunFinished(results=tuple(results), cancelled=self._stop.is_set()))
            return tuple(results)
        finally:
            self.close()

    # -- one configuration ------------------------------------------------------------------
    def measure(self, config: RunConfig, *, index: int = 0,
                trial: Optional[Dict[str, Any]] = None) -> ConfigResult:
        """Measure one configuration: never raises for what the configuration did (that is its
        result's status, error and error kind)."""
        trial = dict(trial or {})
        self._sampler.start()
        try:
            return self._measure(config, index, trial)
        except Stopped:
            return ConfigResult(config=config, status="cancelled", error="stopped before measuring",
                                trial=trial)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            cause = failure(exc)
            return ConfigResult(config=config, status="failed", error=str(cause),
                                error_kind=cause.kind, traceback=cause.details, trial=trial)

    def _make_backend(self, config: RunConfig) -> Backend:
        if self._backend_factory is not None:
            return self._backend_factory(config)
        cls = backend_class(config.device)
        reason = cls.unavailable(config.device_options, config.device)
        if reason:
            raise ConfigurationError(f"device {config.device!r}: {reason}")
        return cls(config.device_options, config.device)

    def _measure(self, config: RunConfig, index: int, trial: Dict[str, Any]) -> ConfigResult:
        plan = self.plan
        mode = config.copy_mode
        threads = config.threads_per_copy or auto_threads(config.copies)
        self.sink(PhaseChanged(index, "loading", plan.model.source))
        with self._make_backend(config) as backend:
            compiling = f"batch {config.batch_size}" if backend.compiles else None
            if compiling:
                self.sink(PhaseChanged(index, "compiling", compiling))
            artifact = self._interruptible(index, lambda: backend.compile(self._source,
                                                                            config.batch_size),
                                           compiling)
            # Thread copies share one load per run: only the first configuration's first
            # inference is truly cold; process copies load afresh every time.
            cold = mode == "process" or self._source.loaded is None
            kind = type(backend)
            jobs = [
                CopyJob(plan.model, plan.inputs, config, i, plan.warmup, threads,
                        backend=f"{kind.__module__}:{kind.__qualname__}" if self._backend_factory
                        else backend_path(config.device),
                        artifact=artifact, stop=plan.stop,
                        env=kind.process_env(config.device, backend.options, i, config.copies))
                for i in range(config.copies)
            ]
            copies: List[Any] = ([ProcessCopy(job) for job in jobs] if mode == "process"
                                 else [ThreadCopy(job, backend, self._source) for job in jobs])
            abandoned: List[int] = []
            self._stop_by = None
            try:
                with quick_switching(config.open_loop and mode == "thread"):
                    result = self._drive(index, config, copies, threads, cold, artifact,
                                         trial.get("abandon_p99_above_ms"))
            finally:
                abandoned = self._close(copies)
            details = dict(result.details)
            warnings = list(result.warnings)
            if abandoned:
                warnings.append(f"copies {abandoned} did not end within {self.stop_grace_s:g} s "
                                f"of the stop (a device call that never returned): "
                                f"{'terminated' if mode == 'process' else 'abandoned'}")
            return replace(result, trial=trial, details=details, warnings=tuple(warnings))

    def _close(self, copies: List[Any]) -> List[int]:
        """Close every copy by one deadline: the grace that began when they were asked to stop
        (``_drive``), else one grace from now. The indices of those that did not end."""
        deadline = time.monotonic() + self.stop_grace_s if self._stop_by is None else self._stop_by
        ended = close_copies(copies, deadline, exiting_s=self.stop_grace_s)
        return [each.job.copy_index for each, ok in zip(copies, ended) if not ok]

    def _stop_copies(self, copies: List[Any]) -> float:
        """Ask every copy to stop; when they were asked (``time.monotonic``)."""
        since = time.monotonic()
        self._stop_by = self._stop_by or since + self.stop_grace_s
        for each in copies:
            each.request_stop()
        return since

    def _interruptible(self, index: int, step: Callable[[], Any],
                       compiling: Optional[str] = None) -> Any:
        """Run ``step`` (a compile, which may take minutes) in a helper thread, so that a stop
        request ends the wait at once; the step itself is abandoned. While a compile runs, its
        phase is re-announced every ``PROGRESS_EVERY_S`` with the time it has taken so far."""
        outcome: List[Any] = []

        def target() -> None:
            try:
                outcome.append((True, step()))
            except BaseException as exc:
                outcome.append((False, exc))

        helper = threading.Thread(target=target, name="latency-tui-step", daemon=True)
        helper.start()
        started = announced = time.monotonic()
        while helper.is_alive():
            if self._stop.wait(COLLECT_INTERVAL_S / 2):
                raise Stopped()
            self._emit_utilisation(index)
            now = time.monotonic()
            if compiling and now - announced >= PROGRESS_EVERY_S:
                announced = now
                self.sink(PhaseChanged(index, "compiling", f"{compiling}, {now - started:.0f} s"))
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _timed_out(self, copies: List[Any]) -> Optional[ConfigurationError]:
        """The watchdog: a copy whose oldest inference in flight has run past its timeout."""
        now = perf_counter_ns()
        for each in copies:
            inflight = each.inflight()
            if inflight is not None and now - inflight[0] > inflight[1]:
                what = "warming up" if each.report is None else "measuring"
                return ConfigurationError(
                    f"an inference of copy {each.job.copy_index} ran past its timeout of "
                    f"{inflight[1] / 1e9:g} s while {what} (a device call that did not return; "
                    f"set run.timeout_s or --timeout to allow longer)", "timeout")
        return None

    def _emit_utilisation(self, index: Optional[int]) -> None:
        frame = self._sampler.latest()
        if frame is not None:
            self.sink(Utilisation(index, tuple((name, tuple(rows)) for name, rows in frame)))

    def _wait_ready(self, index: int, copies: List[Any]) -> Optional[List[WarmupReport]]:
        reports: List[Optional[WarmupReport]] = [None] * len(copies)
        warming = False
        while any(r is None for r in reports):
            if self._stop.is_set():
                return None
            for i, each in enumerate(copies):
                if reports[i] is None:
                    reports[i] = each.ready(0.05 / len(copies))  # raises the copy's failure
            late = self._timed_out(copies)
            if late is not None:
                raise late
            if not warming and all(c.loaded for c in copies):
                warming = True
                noun = "copy" if len(copies) == 1 else "copies"
                self.sink(PhaseChanged(index, "warmup", f"{len(copies)} {noun} warming up"))
            self._emit_utilisation(index)
        return reports  # type: ignore[return-value]

    def _drive(self, index: int, config: RunConfig, copies: List[Any], threads: int,
               cold: bool, artifact: Any, abandon_above_ms: Optional[float] = None
               ) -> ConfigResult:
        plan = self.plan
        for each in copies:
            each.begin()
        reports = self._wait_ready(index, copies)
        if reports is None:
            return ConfigResult(config=config, status="cancelled",
                                error="stopped during loading or warm-up")
        first = reports[0]
        stable = all(r.stable for r in reports)
        warmup_s = max(r.duration_s for r in reports)
        self.sink(ModelLoaded(index, first.model))
        self.sink(WarmupFinished(index=index, first_inference_ms=first.first_ns / 1e6,
                                 iterations=first.iterations, stable=stable, duration_s=warmup_s))

        stop_rule = plan.stop
        start_ns = perf_counter_ns() + int(START_LEAD_S[config.copy_mode] * 1e9)
        deadline_ns = (start_ns + int(stop_rule.duration_s * 1e9) if stop_rule.duration_s
                       else 1 << 62)
        workers = config.workers_per_copy
        quotas = worker_quotas(stop_rule.samples, config.copies * workers)
        for i, each in enumerate(copies):
            each.go(start_ns, deadline_ns, quotas[i * workers:(i + 1) * workers])
        self.sink(PhaseChanged(index, "measuring"))
        self._sampler.begin()
        collector = Collector(index, self.sink, stop_rule, config, start_ns, plan.sample_cap,
                              abandon_above_ms)
        streams = collector.streams
        cancelled = False
        stop_since: Optional[float] = None
        ended_ns: Optional[int] = None  # open loop: when dispatching was ended early
        cause: Optional[ConfigurationError] = None
        while True:
            if stop_since is None:
                self._stop.wait(COLLECT_INTERVAL_S)
            else:
                time.sleep(COLLECT_INTERVAL_S / 10)  # the copies are finishing their inference
            if self._stop.is_set() and not cancelled:
                # Pass the stop on before anything else, so it takes effect within one inference.
                cancelled = True
                stop_since = stop_since or self._stop_copies(copies)
                self.sink(PhaseChanged(index, "stopping", "stop requested"))
            done = all(each.finished for each in copies)
            collector.collect(copies)
            self._emit_utilisation(index)
            cause = cause or next((c.failure for c in copies if c.failure is not None), None)
            cause = cause or (None if done else self._timed_out(copies))
            if done:
                break
            due = collector.due()
            if due and config.open_loop and ended_ns is None:
                # Send no more requests; the copies serve those sent, within one grace.
                ended_ns = perf_counter_ns()
                for each in copies:
                    each.request_end()
            limit_ns = deadline_ns if ended_ns is None else min(deadline_ns, ended_ns)
            overdue = perf_counter_ns() > limit_ns + int(self.stop_grace_s * 1e9)
            if stop_since is None and (cause is not None or overdue or (
                    due and not config.open_loop)):
                stop_since = self._stop_copies(copies)
            if stop_since is not None and time.monotonic() - stop_since > self.stop_grace_s:
                break  # a copy that does not end is closed by force in _close
        if not done and not cancelled and cause is None:
            cause = ConfigurationError(
                f"an inference was still running {self.stop_grace_s:g} s after measuring should "
                "have ended (a device call that never returned)", "timeout")
        utilisation = self._sampler.end()
        monitor_details = self._sampler.details()
        device_reports = [each.device_report() for each in copies]
        now_ns = perf_counter_ns()  # for a copy that ended without saying when (it died)
        end_ns = max((each.end_ns or now_ns for each in copies), default=start_ns)
        duration_s = max(end_ns - start_ns, 1) / 1e9
        status = "failed" if cause else ("cancelled" if cancelled else "finished")
        count = streams.count
        warnings = []
        if not stable:
            warnings.append(f"warm-up did not stabilise within its bounds ({first.iterations} "
                            f"iterations, {warmup_s:.1f} s)")
        latency = streams.latency.summary()
        device_latency = streams.device.summary() if streams.device is not None else None
        stages = {name: s.summary() for name, s in streams.stages.items() if s.count}
        # The device's time against the host's time of the same work: the service time in
        # open loop, where the latency also holds the wait for a free worker.
        warnings.extend(sync_check(stages.get("service", latency), device_latency))
        warnings.extend(utilisation_warnings(utilisation))
        more, more_warnings = collector.report(duration_s)
        warnings.extend(more_warnings)
        first_starts = collector.first_starts
        spread = (max(first_starts.values()) - min(first_starts.values())) / 1e6 \
            if first_starts else None
        timeline = streams.timeline.build(math.ceil(duration_s / streams.timeline.bucket_s)) \
            if count else None
        return ConfigResult(
            config=config,
            status=status,
            error=str(cause) if cause else None,
            error_kind=cause.kind if cause else None,
            traceback=cause.details if cause else None,
            samples=count,
            duration_s=duration_s,
            first_inference_ms=first.first_ns / 1e6,
            warmup_iterations=first.iterations,
            warmup_stable=stable,
            latency=latency,
            device_latency=device_latency,
            throughput=throughput(count, duration_s, config.batch_size, timeline)
            if count else None,
            stages=stages,
            timeline=timeline,
            latency_samples=store_stream(streams.latency),
            utilisation=utilisation,
            warnings=tuple(warnings),
            details={
                "threads_per_copy": threads,
                "first_inference_cold": cold,
                "device": first.device,
                "warmup_s": warmup_s,
                "warmup_iterations_per_copy": [r.iterations for r in reports],
                "first_inference_ms_per_copy": [r.first_ns / 1e6 for r in reports],
                "load_s_per_copy": [round(r.load_s, 4) for r in reports],
                "start_spread_ms": spread,
                "compile_s": artifact.compile_s,
                "artifact": artifact.key,
                "sample_cap": plan.sample_cap,
                **({"inputs": first.inputs} if first.inputs else {}),
                **({"device_memory": device_reports} if any(device_reports) else {}),
                **monitor_details,
                **more,
            },
        )


def run_plan(plan: RunPlan, sink: Sink, strategy: Optional[Strategy] = None
             ) -> Tuple[ConfigResult, ...]:
    """The engine as a function of (plan, sink): what a Ray task or a script calls."""
    return Engine(plan, sink).run(strategy)
