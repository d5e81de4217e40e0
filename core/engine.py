"""The engine: runs every configuration of a plan and tells the world through events.

For each configuration it creates the backend, starts the copies (threads or processes), waits
until every copy is warmed up, starts measuring in all of them at once, and, about ten times a
second, drains the new samples into the configuration's store and emits ``Samples`` and
``Progress``. A configuration that fails is recorded as failed and the next one runs; a stop
request ends the configuration in progress (recorded as cancelled, with what it measured) and
skips the rest.
"""

from __future__ import annotations

import threading
import time
from time import perf_counter_ns
from typing import Any, List, Optional, Tuple

import numpy as np

from .backends import get_backend
from .errors import ConfigurationError, UserError
from .events import (
    ConfigFinished, ConfigStarted, ModelLoaded, PhaseChanged, Progress, RunFinished,
    RunStarted, Samples, Sink, WarmupFinished,
)
from .histogram import LogHistogram
from .host import host_facts
from .measurement import ConfigResult, LatencySummary
from .runner import (
    FOREVER_NS, CopyJob, Drained, auto_threads, describe_error, make_copies, worker_quotas,
)
from .specs import RunConfig, RunPlan
from .stats import summarize, summarize_histogram, throughput

COLLECT_INTERVAL_S = 0.1


class SampleStore:
    """Every latency of one stream, kept exactly up to ``cap`` samples; past the cap only a
    log-bucketed histogram, so that memory stays bounded on runs of any length."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.count = 0
        self._parts: Optional[List[np.ndarray]] = []
        #: Built only once the cap is crossed: below it the exact samples say everything.
        self.histogram: Optional[LogHistogram] = None

    def add(self, values: np.ndarray) -> None:
        if not values.size:
            return
        self.count += int(values.size)
        if self._parts is not None and self.count <= self.cap:
            self._parts.append(values)
            return
        if self.histogram is None:
            self.histogram = LogHistogram()
            for part in self._parts or ():
                self.histogram.add(part)
            self._parts = None
        self.histogram.add(values)

    @property
    def exact(self) -> bool:
        return self._parts is not None

    def summary(self) -> Optional[LatencySummary]:
        if self.count == 0:
            return None
        if self._parts is not None:
            return summarize(np.concatenate(self._parts))
        return summarize_histogram(self.histogram)


class Engine:
    """Runs a plan. ``run`` blocks (call it from a worker thread); ``stop`` is thread-safe."""

    def __init__(self, plan: RunPlan, sink: Sink) -> None:
        self.plan = plan
        self.sink = sink
        self._stop = threading.Event()
        self._loaded: Any = None
        self._loaded_error: Optional[str] = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Tuple[ConfigResult, ...]:
        plan = self.plan
        self.sink(RunStarted(plan=plan, host=host_facts(), started_at=time.time()))
        results: List[ConfigResult] = []
        for index, config in enumerate(plan.configs):
            if self._stop.is_set():
                break
            self.sink(ConfigStarted(index=index, total=len(plan.configs), config=config))
            result = self._run_config(index, config)
            results.append(result)
            self.sink(ConfigFinished(index=index, result=result))
        cancelled = self._stop.is_set()
        self.sink(RunFinished(results=tuple(results), cancelled=cancelled))
        return tuple(results)

    # -- one configuration --------------------------------------------------------------
    def _run_config(self, index: int, config: RunConfig) -> ConfigResult:
        try:
            return self._measure(index, config)
        except (ConfigurationError, UserError) as exc:
            return ConfigResult(config=config, status="failed", error=str(exc))
        except Exception as exc:
            return ConfigResult(config=config, status="failed", error=describe_error(exc))

    def _load_once(self, index: int) -> Any:
        """Load the model for thread copies once per run; every configuration reuses it."""
        if self._loaded is None and self._loaded_error is None:
            self.sink(PhaseChanged(index, "loading", self.plan.model.source))
            from .models import load_model

            try:
                self._loaded = load_model(self.plan.model)
            except Exception as exc:
                self._loaded_error = describe_error(exc)
        if self._loaded_error is not None:
            raise ConfigurationError(self._loaded_error)
        return self._loaded

    def _measure(self, index: int, config: RunConfig) -> ConfigResult:
        plan = self.plan
        backend = get_backend(config.device, config.device_options)
        backend.check_available()
        threads = config.threads_per_copy or auto_threads(config.copies)
        # Thread copies share one load per run: only the first configuration's first inference
        # is truly cold; process copies load afresh every time.
        cold = config.copy_mode == "process" or self._loaded is None
        loaded = self._load_once(index) if config.copy_mode == "thread" else None
        if config.copy_mode == "process":
            self.sink(PhaseChanged(index, "loading", f"starting {config.copies} copy processes"))
        jobs = [
            CopyJob(plan.model, plan.inputs, config, i, plan.warmup, threads)
            for i in range(config.copies)
        ]
        copies = make_copies(jobs, backend, loaded, config.copy_mode)
        try:
            return self._drive(index, config, copies, threads, cold)
        finally:
            for each in copies:
                each.request_stop()
            for each in copies:
                each.close()

    def _drive(self, index: int, config: RunConfig, copies: list, threads: int,
               cold: bool) -> ConfigResult:
        plan = self.plan
        for each in copies:
            each.begin()
        noun = "copy" if len(copies) == 1 else "copies"
        self.sink(PhaseChanged(index, "warmup", f"{len(copies)} {noun} warming up"))
        reports = self._wait_ready(copies)
        if reports is None:
            return ConfigResult(config=config, status="cancelled", error="stopped during warm-up")
        first = reports[0]
        self.sink(ModelLoaded(index, first.model))
        self.sink(WarmupFinished(
            index=index, first_inference_ms=first.first_ns / 1e6, iterations=first.iterations,
            stable=all(r.stable for r in reports), duration_s=max(r.duration_s for r in reports),
        ))

        stop_rule = plan.stop
        start_ns = perf_counter_ns()
        deadline_ns = start_ns + int(stop_rule.duration_s * 1e9) if stop_rule.duration_s else FOREVER_NS
        workers = config.workers_per_copy
        quotas = worker_quotas(stop_rule.samples, config.copies * workers)
        for i, each in enumerate(copies):
            each.go(start_ns, deadline_ns, quotas[i * workers:(i + 1) * workers])
        self.sink(PhaseChanged(index, "measuring"))

        store = SampleStore(plan.sample_cap)
        stages: dict = {}
        error: Optional[str] = None
        cancelled = False
        while True:
            if cancelled:
                time.sleep(COLLECT_INTERVAL_S / 10)  # the copies are finishing their inference
            else:
                self._stop.wait(COLLECT_INTERVAL_S)
            if self._stop.is_set() and not cancelled:
                # Pass the stop on before anything else, so it takes effect within one inference.
                cancelled = True
                for each in copies:
                    each.request_stop()
                self.sink(PhaseChanged(index, "stopping", "stop requested"))
            done = all(each.finished for each in copies)
            self._collect(index, copies, store, stages, start_ns)
            error = error or next((c.error for c in copies if c.error), None)
            if done:
                break
            if error is not None or (stop_rule.samples and store.count >= stop_rule.samples):
                for each in copies:
                    each.request_stop()
        now_ns = perf_counter_ns()  # for a copy that ended without saying when (it died)
        end_ns = max((each.end_ns or now_ns for each in copies), default=start_ns)
        duration_s = max(end_ns - start_ns, 1) / 1e9
        status = "failed" if error else ("cancelled" if cancelled else "finished")
        summary = store.summary()
        warnings = []
        if not all(r.stable for r in reports):
            warnings.append(
                f"warm-up did not stabilise within its bounds ({first.iterations} iterations, "
                f"{max(r.duration_s for r in reports):.1f} s)"
            )
        return ConfigResult(
            config=config,
            status=status,
            error=error,
            samples=store.count,
            duration_s=duration_s,
            first_inference_ms=first.first_ns / 1e6,
            warmup_iterations=first.iterations,
            warmup_stable=all(r.stable for r in reports),
            latency=summary,
            throughput=throughput(store.count, duration_s, config.batch_size) if store.count else None,
            stages={name: s.summary() for name, s in stages.items() if s.count},
            warnings=tuple(warnings),
            details={
                "threads_per_copy": threads,
                "first_inference_cold": cold,
                "device": first.device,
                "warmup_s": max(r.duration_s for r in reports),
                "warmup_iterations_per_copy": [r.iterations for r in reports],
                "first_inference_ms_per_copy": [r.first_ns / 1e6 for r in reports],
                "sample_cap": plan.sample_cap,
            },
        )

    def _wait_ready(self, copies: list):
        reports: List[Any] = [None] * len(copies)
        while any(r is None for r in reports):
            if self._stop.is_set():
                return None
            for i, each in enumerate(copies):
                if reports[i] is None:
                    reports[i] = each.ready(0.05)  # raises ConfigurationError on failure
        return reports

    def _collect(self, index: int, copies: list, store: SampleStore, stages: dict,
                 start_ns: int) -> None:
        drained: List[Drained] = [each.drain() for each in copies]
        parts = [d.inference for d in drained if d.inference.size]
        elapsed = (perf_counter_ns() - start_ns) / 1e9
        if parts:
            new = parts[0] if len(parts) == 1 else np.concatenate(parts)
            store.add(new)
            self.sink(Samples(index=index, latencies_ns=new, elapsed_s=elapsed))
        for d in drained:
            for name, values in d.stages.items():
                stages.setdefault(name, SampleStore(self.plan.sample_cap)).add(values)
        stop_rule = self.plan.stop
        fractions = []
        if stop_rule.duration_s:
            fractions.append(elapsed / stop_rule.duration_s)
        if stop_rule.samples:
            fractions.append(store.count / stop_rule.samples)
        fraction = min(1.0, max(fractions)) if fractions else None
        self.sink(Progress(index=index, elapsed_s=elapsed, samples=store.count, fraction=fraction))


def run_plan(plan: RunPlan, sink: Sink) -> Tuple[ConfigResult, ...]:
    return Engine(plan, sink).run()
