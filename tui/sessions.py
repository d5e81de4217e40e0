"""The session the app is recording, and saved sessions opened to view; no Textual here.

A session groups the runs that measured the same thing (plan name, model, inputs, stop rule
and warm-up): a batch sweep and then a copies sweep of one preset land in one session and one
results table; a different preset or model starts a new one. Each run of a session has an id
(1, 2, ...): the session file keeps each run's plan under ``runs`` and the id on every result
(``trial["run"]``), and the table shows it ("2.3": run 2, its third configuration). It is
saved after every finished configuration, atomically (``core.session.save_session``), so
quitting or a crash loses at most the configuration in progress. Those saves are written by a
thread of their own (``SessionWriter``): the UI thread only takes the file's text, since the
write's fsync lasts as long as the disk takes (seconds on a busy network home directory), and
the display must not freeze for it. Quitting waits for the last write.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from latency_tui.core.api import (
    Session, SessionRecorder, save_session, session_path, session_text, write_session_text,
)
from latency_tui.core.errors import UserError
from latency_tui.core.events import Event
from latency_tui.core.specs import RunPlan

from .live import LiveConfig, LiveRun

Notify = Callable[[str, str], None]
Outcome = Tuple[Path, Optional[BaseException]]


class SessionWriter:
    """Writes session files on a thread of its own, the newest text of each path only.

    ``submit`` never waits for the disk; ``outcomes`` hands the UI thread what was written or
    failed since it last asked; ``flush`` waits for every write submitted so far (quitting)."""

    def __init__(self, write: Callable[[str, Path], Any] = write_session_text) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._pending: Dict[Path, str] = {}
        self._outcomes: List[Outcome] = []
        self._busy = False
        self._thread: Optional[threading.Thread] = None

    def submit(self, path: Path, text: str) -> None:
        with self._cond:
            self._pending[path] = text  # a write not yet begun is replaced by the newer text
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="session-writer",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def outcomes(self) -> List[Outcome]:
        with self._cond:
            done, self._outcomes = self._outcomes, []
        return done

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted text is written (or failed); False if ``timeout`` passed."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                path = next(iter(self._pending))
                text = self._pending.pop(path)
                self._busy = True
            error: Optional[BaseException] = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._write(text, path)
            except Exception as exc:  # reported to the UI thread as a notice
                error = exc
            with self._cond:
                self._outcomes.append((path, error))
                self._busy = False
                self._cond.notify_all()


class SessionKeeper:
    """Records events into the current session, saves it, and lists its configurations."""

    def __init__(self, directory: Callable[[], Path], notify: Notify,
                 path: Optional[Path] = None, writer: Optional[SessionWriter] = None) -> None:
        self._directory = directory
        self._notify = notify
        self.writer = writer or SessionWriter()
        #: Where the current session is saved (the first one may be given by the user).
        self.path = path
        self.recorder = SessionRecorder()
        #: Every configuration of the session's runs, in the order they were planned.
        self.configs: Dict[str, LiveConfig] = {}
        #: Every file written during this app's life, for the goodbye message.
        self.saved_paths: List[Path] = []
        self._key: Any = None
        self._announced: Optional[Path] = None
        self._handed: set = set()

    @property
    def session(self) -> Session:
        return self.recorder.session

    @property
    def directory(self) -> Path:
        return self._directory()

    def default_path(self, name: str) -> Path:
        """A new file for a session, never one handed out before in this app's life (its first
        write may still be on its way: two sessions must not take one name)."""
        path = session_path(name, self.directory, taken=self._handed)
        self._handed.add(path)
        return path

    def begin_run(self, run: LiveRun) -> None:
        """Join ``run`` to the current session, or start a new one if it measures
        something else."""
        plan: RunPlan = run.plan
        key = (plan.name, plan.model, plan.inputs, plan.stop, plan.warmup)
        if key != self._key:
            if self._key is not None:
                previous = self._announced
                self.path = None
                note = f"; the previous one is in {previous}" if previous else ""
                self._notify("info", f"new session for {plan.name}{note}")
            self._key = key
            self.recorder = SessionRecorder()
            self.configs = {}
            self._announced = None
        run.set_run_id(self.recorder.next_run_id)
        for live in run.configs.values():
            self.configs[live.key] = live

    def record(self, event: Event) -> None:
        self.recorder(event)

    def autosave(self, wait: bool = False) -> Optional[Path]:
        """Save the session where it goes (a new file in the data directory the first time),
        by the writer's thread; ``wait`` (quitting) waits for it. A failure is a notice, never
        an exception in the middle of a run."""
        if not self.session.results:
            if wait:  # an earlier session's last write may still be on its way
                self.flush()
            return None
        path = self.path or self.default_path(str(self.session.preset.get("name") or "session"))
        try:
            text = session_text(self.session)
        except (UserError, ValueError, TypeError) as exc:
            self._notify("error", f"could not save the session to {path}: {exc}")
            return None
        self.path = path
        self.writer.submit(path, text)
        if self._announced != path:  # said now, in the run's order; a failed write says so
            self._announced = path
            self._notify("info", f"session saved to {path} (after every configuration)")
        if wait:
            self.flush()
        self.report()
        return path

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every write submitted so far (quitting), then report them."""
        if not self.writer.flush(timeout):
            self._notify("error", f"a session's write did not end in {timeout:g} s")
        self.report()

    def report(self) -> None:
        """Notices for the writes that failed since the last call (the app's tick calls it)."""
        for path, error in self.writer.outcomes():
            if error is None:
                self._remember(path)
            else:
                self._notify("error", f"could not save the session to {path}: {error}")

    def save_as(self, path: Path, session: Optional[Session] = None) -> bool:
        """Save to ``path``; the current session then keeps being saved there."""
        target = session if session is not None else self.session
        try:
            save_session(target, path)
        except (OSError, ValueError, UserError) as exc:
            self._notify("error", f"could not save to {path}: {exc}")
            return False
        if session is None:
            self.path = self._announced = path
        self._remember(path)
        n = len(target.results)
        self._notify("info", f"saved {n} configuration{'s' if n != 1 else ''} to {path}")
        return True

    def _remember(self, path: Path) -> None:
        if path not in self.saved_paths:
            self.saved_paths.append(path)

    def recent(self, limit: int = 8) -> List[str]:
        """Saved sessions in the data directory, newest first."""
        directory = self.directory
        if not directory.is_dir():
            return []
        files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [str(p) for p in files[:limit]]


def view_configs(session: Session) -> Dict[str, LiveConfig]:
    """A saved session's results as the panes' configurations (finished, no samples)."""
    return {f"view:{i}": LiveConfig.of_result(f"view:{i}", i, result)
            for i, result in enumerate(session.results)}
