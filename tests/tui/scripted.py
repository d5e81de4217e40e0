"""A scripted, seeded run for the app's tests and snapshots, behind the same ``RunHandle`` as a
real one and built from the real event types, streams and statistics.

The real engine (tests use it in a thread on the fake device wherever they can) measures real
time, so no two runs draw the same screen. Snapshots and tests that look at a run at an exact
point need the same events every time: this emits them, with latencies drawn from a seeded
log-normal whose median grows with the batch size and the number of copies. ``pause_at`` holds
it mid-configuration; ``hold=(index, phase)`` holds it in "loading" or "warmup" as a slow model
load would; ``deaf=True`` makes it ignore stop requests, as an engine stuck in a load it cannot
interrupt does, so that only ``kill`` ends it (then, as a killed process, it sends nothing more);
``fail_batch`` fails that batch size as a model would. Its events obey the engine's protocol
(``tests/protocol.py`` checks both).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from latency_tui.core.api import ConfigResult, ConfigStreams, Throughput
from latency_tui.core.events import (
    ConfigFinished, ConfigStarted, ModelLoaded, PhaseChanged, Progress, RunFinished, RunStarted,
    Samples, Sink, WarmupFinished,
)
from latency_tui.core.isolation import RunHandle
from latency_tui.core.specs import RunConfig, RunPlan
from latency_tui.core.streams import Block

#: Facts a host reports, fixed so that snapshots do not show this machine.
FAKE_HOST: Dict[str, Any] = {
    "hostname": "fake-host", "platform": "Linux", "logical_cpus": 8,
    "load_average": [0.1, 0.1, 0.1],
}
FAKE_MODEL = {"source": "builtin:mlp", "name": "mlp", "parameters": 1_234_567, "size_mb": 4.9}


class _Killed(Exception):
    """The scripted run was killed: like a terminated process, it sends nothing more."""


class ScriptedRun(RunHandle):
    killable = True

    def __init__(self, plan: RunPlan, sink: Sink, *, seed: int = 0, chunks: int = 10,
                 chunk_size: int = 400, pace_s: float = 0.0, fail_batch: Optional[int] = None,
                 unstable_index: Optional[int] = None,
                 pause_at: Optional[Tuple[int, int]] = None, pause_timeout_s: float = 30.0,
                 hold: Optional[Tuple[int, str]] = None, deaf: bool = False) -> None:
        super().__init__()
        self.plan, self.sink = plan, sink
        self.seed, self.chunks, self.chunk_size, self.pace_s = seed, chunks, chunk_size, pace_s
        self.fail_batch, self.unstable_index = fail_batch, unstable_index
        self.pause_at, self.pause_timeout_s = pause_at, pause_timeout_s
        self.hold, self.deaf = hold, deaf
        #: Set when the run reaches ``pause_at`` or ``hold``; ``resume`` lets it go on.
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.stop_calls = 0
        self.kill_calls = 0
        self._stopped = threading.Event()
        threading.Thread(target=self._work, name="scripted-run", daemon=True).start()

    def _request_stop(self) -> None:
        self.stop_calls += 1
        if not self.deaf:
            self._stopped.set()
            self.resume.set()

    def kill(self) -> None:
        self.kill_calls += 1
        super().kill()
        self.resume.set()

    def _wait_here(self) -> None:
        """Hold until resumed, stopped or killed (at most ``pause_timeout_s``)."""
        self.paused.set()
        self.resume.wait(self.pause_timeout_s)
        if self.killed:
            raise _Killed()
        if not self._stopped.is_set():
            self.resume.clear()  # the next hold waits for a resume of its own

    @staticmethod
    def median_ms(config: RunConfig) -> float:
        base = float(config.device_options.get("latency_ms", 2.0))
        return base * config.batch_size ** 0.7 * (1 + 0.15 * (config.copies - 1))

    def _work(self) -> None:
        try:
            self.results = self._run()
        except _Killed:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self._done.set()

    def _run(self) -> Tuple[ConfigResult, ...]:
        emit = self.sink
        rng = np.random.default_rng(self.seed)
        total = len(self.plan.configs)
        duration = self.plan.stop.duration_s or 10.0
        results: List[ConfigResult] = []
        emit(RunStarted(self.plan, dict(FAKE_HOST), started_at=0.0))
        for index, config in enumerate(self.plan.configs):
            if self._stopped.is_set():
                break
            emit(ConfigStarted(index, total, config, {"strategy": "sweep", "step": index}))
            held = False
            for phase, detail in (("loading", self.plan.model.source),
                                  ("warmup", "1 copy warming up")):
                emit(PhaseChanged(index, phase, detail))
                if self.hold == (index, phase):
                    self._wait_here()
                    if self._stopped.is_set():
                        held = True
                        break
            if held:  # stopped while loading or warming up: cancelled, nothing measured
                result = ConfigResult(config, "cancelled", error="stopped during loading or "
                                      "warm-up", trial={"strategy": "sweep", "step": index})
                results.append(result)
                emit(ConfigFinished(index, result))
                break
            median = self.median_ms(config)
            stable = index != self.unstable_index
            emit(ModelLoaded(index, dict(FAKE_MODEL)))
            emit(WarmupFinished(index, median * 30, 40 if stable else 5000, stable, 0.4))
            if config.batch_size == self.fail_batch:
                result = ConfigResult(config, "failed", error_kind="error",
                                      error=f"RuntimeError: out of memory at batch "
                                            f"{config.batch_size} (scripted)")
                results.append(result)
                emit(ConfigFinished(index, result))
                continue
            emit(PhaseChanged(index, "measuring"))
            streams = ConfigStreams(self.plan.sample_cap)
            elapsed = 0.0
            cancelled = False
            for chunk in range(self.chunks):
                if self._stopped.is_set():
                    cancelled = True
                    break
                size = self.chunk_size * config.copies * config.workers_per_copy
                latency = (rng.lognormal(np.log(median), 0.12, size) * 1e6).astype(np.int64)
                began, elapsed = elapsed, duration * (chunk + 1) / self.chunks
                ends = np.sort(rng.integers(int(began * 1e9), int(elapsed * 1e9), size))
                block = Block(ends - latency, ends)
                streams.add(block)
                emit(Samples(index, block, elapsed))
                emit(Progress(index, elapsed, streams.count, elapsed / duration))
                if self.pause_at == (index, chunk):
                    self._wait_here()
                if self.pace_s:
                    time.sleep(self.pace_s)
            if cancelled:
                emit(PhaseChanged(index, "stopping", "stop requested"))
            count = streams.count
            result = ConfigResult(
                config, "cancelled" if cancelled else "finished", samples=count,
                duration_s=elapsed, first_inference_ms=median * 30,
                warmup_iterations=40 if stable else 5000, warmup_stable=stable,
                latency=streams.latency.summary(),
                throughput=Throughput(count / elapsed, count * config.batch_size / elapsed)
                if elapsed else None,
                timeline=streams.timeline.build(math.ceil(elapsed)) if count else None,
                trial={"strategy": "sweep", "step": index},
                warnings=() if stable else ("warm-up did not stabilise within its bounds",),
            )
            results.append(result)
            emit(ConfigFinished(index, result))
            if cancelled:
                break
        emit(RunFinished(tuple(results), cancelled=self._stopped.is_set()))
        return tuple(results)


class Starter:
    """The app's ``start_run``: starts scripted runs (or, with ``real=True``, the real engine in a
    thread on whatever device the plan names) and keeps every plan and handle it started."""

    def __init__(self, real: bool = False, **options: Any) -> None:
        self.real = real
        self.options = options
        self.handles: List[RunHandle] = []
        self.plans: List[RunPlan] = []

    def __call__(self, plan: RunPlan, sink: Sink) -> RunHandle:
        if self.real:
            from latency_tui.core.api import start

            handle = start(plan, sink, isolation="thread", **self.options)
        else:
            handle = ScriptedRun(plan, sink, **self.options)
        self.plans.append(plan)
        self.handles.append(handle)
        return handle

    @property
    def last(self) -> Any:
        return self.handles[-1]
