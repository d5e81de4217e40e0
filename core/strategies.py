"""What the engine measures next: strategies that propose configurations, one at a time, each
knowing every result so far.

A sweep proposes a fixed list. A search (the best batch size, the most throughput under a p99
bound) proposes its next trial from the results of the earlier ones; the engine runs them all
the same way through ``Engine.run(strategy)``, and each result records the trial that produced
it (``ConfigResult.trial``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

from .measurement import ConfigResult
from .specs import RunConfig


@dataclass(frozen=True)
class Trial:
    config: RunConfig
    #: Recorded with the result: {"strategy": "sweep", ...}.
    info: Dict[str, Any] = field(default_factory=dict, hash=False)


class Strategy(ABC):
    name: str = ""

    @property
    def total(self) -> Optional[int]:
        """How many trials there will be, when known in advance."""
        return None

    @abstractmethod
    def propose(self, history: Sequence[ConfigResult]) -> Optional[Trial]:
        """The next trial given every result so far, or None when done."""

    def outcome(self) -> Optional[Dict[str, Any]]:
        """What a search found, as plain JSON (``search`` documents it); None for a sweep."""
        return None


class Sweep(Strategy):
    """Every configuration of a plan, in order."""

    name = "sweep"

    def __init__(self, configs: Sequence[RunConfig]) -> None:
        self.configs: Tuple[RunConfig, ...] = tuple(configs)

    @property
    def total(self) -> Optional[int]:
        return len(self.configs)

    def propose(self, history: Sequence[ConfigResult]) -> Optional[Trial]:
        done = len(history)
        if done >= len(self.configs):
            return None
        return Trial(self.configs[done], {"strategy": self.name, "step": done})
