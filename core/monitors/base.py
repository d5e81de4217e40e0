"""The monitor interface and its simplest implementations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8
    Protocol = object  # type: ignore[assignment,misc]


@dataclass(frozen=True)
class Reading:
    """One row: a label and a percentage, or None and the reason there is none.

    ``note`` is extra text after the value ("3.1 / 23.5 GB"); with ``percent`` None it is the
    reason for the absence. ``metrics`` are further numbers worth a summary (``("used_gb",
    3.1)``, ``("power_w", 212.0)``).
    """

    label: str
    percent: Optional[float]
    note: str = ""
    metrics: Tuple[Tuple[str, float], ...] = ()


class Monitor(Protocol):
    name: str

    def poll(self) -> List[Reading]:
        """Current readings; quick and non-blocking."""
        ...


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
