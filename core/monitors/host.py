"""The host's own monitors: CPU per core and memory, from psutil."""

from __future__ import annotations

from typing import Any, List, Optional

from .base import Reading


class CpuMonitor:
    """CPU utilisation, all cores and per core, since this monitor's previous poll.

    It keeps its own previous reading of the CPU times instead of psutil's module-wide one,
    so that two monitors (the engine's and the TUI's) never disturb each other.
    """

    name = "cpu"

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            self._psutil: Any = None
            return
        self._psutil = psutil
        self._previous: Optional[list] = self._times()

    def _times(self) -> list:
        return [(t.idle + getattr(t, "iowait", 0.0), sum(t)) for t in
                self._psutil.cpu_times(percpu=True)]

    def poll(self) -> List[Reading]:
        if self._psutil is None:
            return [Reading("cpu", None, "psutil not installed")]
        now = self._times()
        previous, self._previous = self._previous, now
        elapsed = [t1 - t0 for (_, t0), (_, t1) in zip(previous or (), now)]
        if previous is None or len(previous) != len(now) or min(elapsed) <= 0:
            # No interval yet (or shorter than the kernel's tick): no figure, not a fake 0 %.
            self._previous = previous or now
            return [Reading(f"cpu{i}", None, "measuring") for i in range(len(now))]
        busy = [max(0.0, min(100.0, 100.0 * (1.0 - (idle1 - idle0) / span)))
                for (idle0, _), (idle1, _), span in zip(previous, now, elapsed)]
        readings = [Reading("cpu", sum(busy) / len(busy), f"{len(busy)} cores")] if len(busy) > 1 else []
        return readings + [Reading(f"cpu{i}", v) for i, v in enumerate(busy)]


class MemoryMonitor:
    """Host memory in use."""

    name = "memory"

    def poll(self) -> List[Reading]:
        try:
            import psutil

            memory = psutil.virtual_memory()
        except Exception as exc:  # pragma: no cover - psutil is a dependency
            return [Reading("mem", None, str(exc))]
        used = (memory.total - memory.available) / 1e9
        return [Reading("mem", float(memory.percent), f"{used:.1f}/{memory.total / 1e9:.1f} GB",
                        (("used_gb", round(used, 3)),))]
