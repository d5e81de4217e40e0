"""Device monitors for the utilisation pane: one small interface, one class per source.

A monitor has a ``name`` and a ``poll()`` that returns its current readings. The pane polls
every monitor at most a few times a second, from the UI thread, never from a timing thread, so
that watching the device does not disturb what is measured. ``poll`` must return quickly: a
source that is slow to read (neuron-monitor streams JSON from a subprocess) keeps its own
reader thread and hands back the latest values.

A reading without a value says why (``Reading(label, None, "no NVIDIA driver")``): the pane
shows "N/A (no NVIDIA driver)", never a fake 0 %. GPU (NVML) and NeuronCore monitors plug in
by implementing the same two members; the pane does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

try:  # Protocol is in typing from Python 3.8
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class Reading:
    """One row of the pane: a label and a percentage, or None and the reason there is none.

    ``note`` is extra text after the value ("3.1 / 23.5 GB"); with ``percent`` None it is the
    reason for the absence.
    """

    label: str
    percent: Optional[float]
    note: str = ""


class Monitor(Protocol):
    name: str

    def poll(self) -> List[Reading]:
        """Current readings; quick and non-blocking."""
        ...


class CpuMonitor:
    """Per-core CPU utilisation from psutil, since the previous poll."""

    name = "cpu"

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            self._psutil = None
        else:
            self._psutil = psutil
            psutil.cpu_percent(percpu=True)  # primes the counters; its answer is meaningless
        self._primed = False

    def poll(self) -> List[Reading]:
        if self._psutil is None:
            return [Reading("cpu", None, "psutil not installed")]
        values = self._psutil.cpu_percent(percpu=True)
        if not self._primed:
            self._primed = True
            return [Reading(f"cpu{i}", None, "measuring") for i in range(len(values))]
        return [Reading(f"cpu{i}", float(v)) for i, v in enumerate(values)]


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
        return [Reading("mem", float(memory.percent), f"{used:.1f}/{memory.total / 1e9:.1f} GB")]


class UnavailableMonitor:
    """A device whose monitor is not available here: says so instead of showing nothing."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def poll(self) -> List[Reading]:
        return [Reading(self.name, None, self.reason)]


class StaticMonitor:
    """Fixed readings: for tests and snapshots, which need the same screen on every run."""

    def __init__(self, name: str, readings: Sequence[Reading]) -> None:
        self.name = name
        self.readings = list(readings)

    def poll(self) -> List[Reading]:
        return list(self.readings)


def default_monitors(device: str = "cpu") -> List[Monitor]:
    """The monitors for a device: host CPU and memory always; a placeholder that says why
    for accelerators whose monitors have not been built yet."""
    monitors: List[Monitor] = [CpuMonitor(), MemoryMonitor()]
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        monitors.append(UnavailableMonitor("gpu", "no NVML monitor in this version"))
    elif kind == "neuron":
        monitors.append(UnavailableMonitor("neuroncore", "no neuron-monitor in this version"))
    return monitors
