"""The sink that records a run into a ``Session`` as it proceeds and saves it after every
finished configuration (``session`` holds the file format; this, the when)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .errors import UserError
from .events import ConfigFinished, Event, ModelLoaded, RunStarted, SearchUpdated
from .noise import with_noise
from .noisemarks import MarkedNoiseWatch, with_busy_seconds
from .repro import replay_facts, with_cost
from .session import PathLike, Session, now_iso, save_session


class SessionRecorder:
    """An event sink that keeps a ``Session`` current and, given a path, saves it after
    every finished configuration. A save that fails (a full disk) is kept in ``save_error``
    and tried again after the next configuration: the run goes on."""

    def __init__(self, path: Optional[PathLike] = None, session: Optional[Session] = None, *,
                 price_per_hour: Optional[float] = None, replay_of: Optional[dict] = None):
        self.path = Path(path).expanduser() if path is not None else None
        self.session = session or Session()
        #: The id of the run being recorded (each ``RunStarted`` begins the next one).
        self.run_id: Optional[int] = None
        self.save_error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._closed = False
        #: Host noise around each configuration (``noise``): its verdict goes in the result,
        #: with the seconds in which the host was busy (``noisemarks``).
        self.noise = MarkedNoiseWatch()
        #: US dollars per hour: each result gets ``details["cost_per_million_usd"]``.
        self.price_per_hour = price_per_hour
        #: A replay's original (``repro.Replay.reference()``), for ``host["replay_of"]``.
        self.replay_of = replay_of

    def __call__(self, event: Event) -> None:
        self.noise(event)
        if isinstance(event, RunStarted):
            self.run_id = self.next_run_id
            self.session.runs.append({"id": self.run_id, "started": now_iso(),
                                      "configurations": len(event.plan.configs),
                                      "preset": dict(event.plan.preset)})
            self.session.preset = dict(event.plan.preset)
            self.session.host = dict(event.host)  # the engine's: noise notes, reproducibility
            if self.replay_of:
                self.session.host["replay_of"] = replay_facts(
                    self.replay_of, self.session.host.get("reproducibility"))
            # Known before loading, so that a run whose every configuration failed still says it.
            self.session.model = {"source": event.plan.model.source, "name": None,
                                  "parameters": None, "size_mb": None}
        elif isinstance(event, ModelLoaded):
            if self.session.model.get("name") is None:
                self.session.model = dict(event.model)
        elif isinstance(event, ConfigFinished):
            result = with_noise(event.result, self.noise.load(event.index))
            result = with_busy_seconds(result, self.noise.seconds(event.index))
            result = with_cost(result, self.price_per_hour)
            if self.run_id is not None:
                result = replace(result, trial={**(result.trial or {}), "run": self.run_id})
            self.session.results.append(result)
            self.save()
        elif isinstance(event, SearchUpdated) and self.session.runs:
            # A search's outcome belongs to its run; saved with the next result, and at once
            # when the search has ended.
            self.session.runs[-1]["search"] = event.outcome
            if event.outcome.get("done"):
                self.save()

    @property
    def next_run_id(self) -> int:
        """The id the next run recorded here will have."""
        return max((run["id"] for run in self.session.runs), default=0) + 1

    def save(self) -> Optional[Path]:
        if self.path is None:
            return None
        with self._lock:
            if self._closed:
                return None
            try:
                written = save_session(self.session, self.path)
            except (OSError, UserError, ValueError, TypeError) as exc:
                self.save_error = exc
                return None
            self.save_error = None
            return written

    def close(self, timeout: float = 10.0) -> None:
        """Let a save in progress finish (so that its temporary file is renamed or removed)
        and take no more: called before the process exits, whatever ends it."""
        if self._lock.acquire(timeout=timeout):
            self._closed = True
            self._lock.release()
