"""The engine's monitor thread and the pure function that summarises what it read."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .base import Monitor, Reading

Groups = List[Tuple[str, List[Reading]]]


class MonitorSampler:
    """Polls monitors every ``period_s`` in a thread of its own, never a timing thread.

    The engine takes the newest frame with ``latest()`` from its own thread (so events keep one
    emitting thread), and marks each configuration's measuring window with ``begin`` / ``end``:
    ``end`` summarises the frames read in between.
    """

    def __init__(self, monitors: Sequence[Monitor], period_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from . import poll_all

        self._poll_all = poll_all
        self.monitors = list(monitors)
        self.period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._frame: Optional[Groups] = None
        self._fresh = False
        self._window: Optional[List[Groups]] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "MonitorSampler":
        if self.monitors and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="latency-tui-monitors",
                                            daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            frame = self._poll_all(self.monitors)
            with self._lock:
                self._frame, self._fresh = frame, True
                if self._window is not None:
                    self._window.append(frame)
            self._stop.wait(self.period_s)

    def latest(self) -> Optional[Groups]:
        """The newest frame if it has not been taken yet, else None."""
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return self._frame

    def begin(self) -> None:
        with self._lock:
            self._window = []
        self._tell("begin")

    def end(self) -> Dict[str, Dict[str, Any]]:
        """The window's summary. A window shorter than the period may have caught no frame:
        it then gets the newest one, read at most a period before it ended. Monitors with
        ``begin`` / ``end`` methods of their own (to keep their window's details) are told."""
        self._tell("end")
        with self._lock:
            frames, self._window = self._window or [], None
            if not frames and self._frame is not None:
                frames = [self._frame]
        return summarise(frames)

    def _tell(self, hook: str) -> None:
        for monitor in self.monitors:
            method = getattr(monitor, hook, None)
            if callable(method):
                try:
                    method()
                except Exception:  # as with details(): never worth a failed configuration
                    pass

    def details(self) -> Dict[str, Any]:
        """What monitors with more to say than readings add to a result (``details()``)."""
        out: Dict[str, Any] = {}
        for monitor in self.monitors:
            extra = getattr(monitor, "details", None)
            if extra is not None:
                try:
                    out.update(extra())
                except Exception:  # a monitor's extras are never worth a failed configuration
                    pass
        return out

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        for monitor in self.monitors:
            close = getattr(monitor, "close", None)
            if close is not None:
                close()


def utilisation_warnings(summary: Dict[str, Dict[str, Any]]) -> List[str]:
    """What a configuration's utilisation summary says against its figures: a GPU that
    throttled, other processes sharing it, or a Neuron runtime reporting failed executions."""
    warnings = []
    for label, entry in summary.items():
        if entry.get("throttled", {}).get("max", 0) > 0:
            warnings.append(f"{label} throttled its clocks during the measurement (power, "
                            "heat or a cap): figures may read slow")
        others = entry.get("other_processes", {}).get("max", 0)
        if others > 0:
            warnings.append(f"{label} was shared with {others:.0f} other process"
                            f"{'es' if others > 1 else ''} during the measurement")
        failed = entry.get("execution_errors", {}).get("max", 0)
        if failed > 0:
            warnings.append(f"{label}: the Neuron runtime reported failed executions during the "
                            f"measurement (up to {failed:.0f} in one monitor period): figures "
                            "may include inferences that did not succeed")
    return warnings


def summarise(frames: Sequence[Groups]) -> Dict[str, Dict[str, Any]]:
    """Per reading label over ``frames``: mean and max of its percentage (and of each metric),
    how many readings there were, or the reason it was absent throughout."""
    values: Dict[str, List[float]] = {}
    metrics: Dict[str, Dict[str, List[float]]] = {}
    absent: Dict[str, str] = {}
    for frame in frames:
        for _name, readings in frame:
            for reading in readings:
                if reading.percent is None:
                    absent.setdefault(reading.label, reading.note)
                    continue
                values.setdefault(reading.label, []).append(float(reading.percent))
                for metric, value in reading.metrics:
                    metrics.setdefault(reading.label, {}).setdefault(metric, []).append(float(value))
    out: Dict[str, Dict[str, Any]] = {}
    for label in list(dict.fromkeys([*values, *absent])):
        seen = values.get(label)
        if not seen:
            out[label] = {"absent": absent.get(label, "")}
            continue
        entry: Dict[str, Any] = {"mean": round(sum(seen) / len(seen), 2), "max": round(max(seen), 2),
                                 "samples": len(seen)}
        for metric, numbers in metrics.get(label, {}).items():
            entry[metric] = {"mean": round(sum(numbers) / len(numbers), 3),
                             "max": round(max(numbers), 3)}
        out[label] = entry
    return out
