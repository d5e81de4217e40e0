"""When the host was noisy: the seconds of a configuration's timeline in which other processes
(or the hypervisor) kept the CPUs busy, or the CPU throttled its clocks.

``MarkedNoiseWatch`` is ``noise.NoiseWatch`` that also keeps the time of each of its measuring
window's load readings (the same intervals, about a second each, sampled at each
``Utilisation``) and the time measuring began (from ``Progress`` and ``Samples``, whose
``elapsed_s`` is counted from it). ``busy_seconds`` turns the busy intervals into whole seconds
since measuring began, the timeline's buckets, and the recorder stores them in the result:
``details["noise"]["seconds"] = [3, 4, 5]`` (empty when the host was quiet throughout; absent
when nothing was read, as in sessions recorded before this).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .events import ConfigFinished, PhaseChanged, Progress, RunStarted, Samples, Utilisation
from .measurement import ConfigResult
from .noise import LOAD_MEAN_CPUS, LOAD_MEAN_FRACTION, NoiseWatch, read_throttle_count

#: A reading's interval marks a second that holds at least this much of it (or half of it,
#: for an interval shorter than a second): a one-second reading marks one or two seconds.
MIN_OVERLAP_S = 0.5


def busy_threshold(cpus: int) -> float:
    """CPUs others must keep busy in a reading for it to count: the noisy average's bar."""
    return max(LOAD_MEAN_CPUS, LOAD_MEAN_FRACTION * max(1, int(cpus)))


def is_busy(interval: Mapping[str, float], cpus: int) -> bool:
    """Whether one load reading (``others_between``'s) is above the bar, by other processes or
    by the hypervisor's steal."""
    bar = busy_threshold(cpus)
    return float(interval.get("others") or 0.0) >= bar or \
        float(interval.get("steal") or 0.0) >= bar


def busy_seconds(spans: Iterable[Tuple[float, float]], start: float,
                 limit: Optional[float] = None) -> List[int]:
    """Whole seconds since ``start`` (the timeline's seconds) covered by the busy ``spans``
    (monotonic ``(from, to)`` of each busy reading): a second is marked when it holds at least
    ``MIN_OVERLAP_S`` of a span or half of a shorter one. Seconds before ``start`` and, given a
    ``limit`` (the timeline's length in seconds), from ``limit`` on are left out."""
    found = set()
    for low, high in spans:
        low, high = low - start, high - start
        need = min(MIN_OVERLAP_S, (high - low) / 2)
        if high <= 0 or need <= 0:
            continue
        for second in range(max(0, int(math.floor(low))), int(math.ceil(high))):
            if min(high, second + 1) - max(low, second) >= need - 1e-9:
                found.add(second)
    if limit is not None:
        found = {s for s in found if s < limit}
    return sorted(found)


class MarkedNoiseWatch(NoiseWatch):
    """``NoiseWatch`` that also says when, while measuring, the host was busy.

    ``seconds(index)`` is the busy seconds of the configuration measuring now (so far) or of one
    of the current run's that ended. Never raises, as its parent."""

    def __init__(self, probe: Any = None, root: str = "/") -> None:
        super().__init__(probe, root)
        #: Busy seconds of each configuration of the current run that ended.
        self.marked: Dict[int, List[int]] = {}
        self._reset(None)

    def _reset(self, index: Optional[int]) -> None:
        self._marking = index
        self._window: Any = None
        self._counted = 0
        self._mark_at = 0.0
        self._start: Optional[float] = None
        self._started = False  # whether ``_start`` came from the engine's elapsed time
        self._throttles: Optional[int] = None
        self._spans: List[Tuple[float, float]] = []

    def __call__(self, event: Any) -> None:
        super().__call__(event)
        try:
            self._follow(event)
        except Exception:  # a check of the host is never worth a broken recording
            pass

    def _clock(self) -> float:
        probe = self._probe
        return probe.clock() if probe is not None else time.monotonic()

    def _follow(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self.marked = {}
            self._reset(None)
        elif isinstance(event, PhaseChanged) and event.phase in ("warmup", "measuring"):
            if event.index != self._marking or event.phase == "measuring":
                self._reset(event.index)
            window = self.windows.get("measuring") if event.phase == "measuring" else None
            if window is not None:
                self._window, self._mark_at = window, window.mark.at
                self._start = window.first.at  # until the engine says how long it measured
                self._throttles = read_throttle_count(self.root)
        elif isinstance(event, (Progress, Samples)) and event.index == self._marking:
            if event.elapsed_s > 0 and self._window is not None:
                # Each event is read after it was sent: the earliest estimate is the closest.
                start = self._clock() - event.elapsed_s
                if not self._started or start < (self._start or start):
                    self._start, self._started = start, True
        elif isinstance(event, Utilisation):
            self._take()
        elif isinstance(event, ConfigFinished) and event.index == self._marking:
            self._take()  # the window's last reading, taken as it closed
            if self._window is not None:
                self.marked[event.index] = self.seconds(event.index)
            self._reset(None)

    def _take(self) -> None:
        """The window's readings since the last look (one per event): busy ones are kept with
        their times; a throttle counter that rose marks the reading's interval too."""
        window = self._window
        if window is None or len(window.intervals) <= self._counted:
            return
        throttles = read_throttle_count(self.root)
        rose = throttles is not None and self._throttles is not None and \
            throttles > self._throttles
        self._throttles = throttles
        end = window.mark.at
        if rose or any(is_busy(i, window.cpus) for i in window.intervals[self._counted:]):
            self._spans.append((self._mark_at, end))
        self._counted, self._mark_at = len(window.intervals), end

    def seconds(self, index: int) -> Optional[List[int]]:
        """The busy seconds of a configuration of the current run: None when its measuring
        was never watched."""
        if index == self._marking and self._window is not None and self._start is not None:
            return busy_seconds(self._spans, self._start)
        return self.marked.get(index)


def with_busy_seconds(result: ConfigResult, seconds: Optional[Sequence[int]]) -> ConfigResult:
    """``result`` with ``details["noise"]["seconds"]``: the busy seconds that fall within its
    timeline. Unchanged when there is no verdict or nothing was read."""
    details = result.details if isinstance(result.details, dict) else {}
    noise = details.get("noise")
    if seconds is None or not isinstance(noise, dict):
        return result
    timeline = result.timeline
    limit = math.ceil(len(timeline) * timeline.bucket_s - 1e-9) if timeline is not None else None
    kept = sorted({int(s) for s in seconds if s >= 0 and (limit is None or s < limit)})
    return replace(result, details={**details, "noise": {**noise, "seconds": kept}})
