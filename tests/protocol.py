"""The engine's event protocol, as ``core.events`` documents it: checked on the real engine and
on the tests' scripted runs alike, so that the TUI's tests test what the engine really emits."""

from __future__ import annotations

from typing import List, Sequence

from latency_tui.core.events import (
    PHASES, ConfigFinished, ConfigStarted, ModelLoaded, PhaseChanged, Progress, RunFinished,
    RunStarted, Samples, SearchUpdated, Utilisation, WarmupFinished,
)


def protocol_errors(events: Sequence[object]) -> List[str]:
    """What in ``events`` breaks the documented order (empty when nothing does)."""
    errors: List[str] = []
    events = [e for e in events if not isinstance(e, (Utilisation, SearchUpdated))]
    if not events or not isinstance(events[0], RunStarted):
        errors.append("the first event is not RunStarted")
    if not events or not isinstance(events[-1], RunFinished):
        errors.append("the last event is not RunFinished")
    by_index = {}
    for event in events[1:-1]:
        index = getattr(event, "index", None)
        if index is None:
            errors.append(f"{type(event).__name__} between RunStarted and RunFinished has no index")
            continue
        by_index.setdefault(index, []).append(event)
    for index, mine in sorted(by_index.items()):
        where = f"configuration {index}"
        if not isinstance(mine[0], ConfigStarted):
            errors.append(f"{where}: does not begin with ConfigStarted")
        if not isinstance(mine[-1], ConfigFinished):
            errors.append(f"{where}: does not end with ConfigFinished")
        phases = [e.phase for e in mine if isinstance(e, PhaseChanged)]
        unknown = [p for p in phases if p not in PHASES]
        if unknown:
            errors.append(f"{where}: phases {unknown} the engine never emits")
        ranks = [PHASES.index(p) for p in phases if p in PHASES]
        if ranks != sorted(ranks):
            errors.append(f"{where}: phases out of order: {phases}")
        kinds = [type(e) for e in mine]
        if Samples in kinds or Progress in kinds:
            first_sample = min(kinds.index(k) for k in (Samples, Progress) if k in kinds)
            measuring = [i for i, e in enumerate(mine)
                         if isinstance(e, PhaseChanged) and e.phase == "measuring"]
            if not measuring or measuring[0] > first_sample:
                errors.append(f"{where}: samples before the measuring phase")
            for kind in (ModelLoaded, WarmupFinished):
                if kind not in kinds or kinds.index(kind) > first_sample:
                    errors.append(f"{where}: {kind.__name__} missing or after the samples")
    finished = events[-1] if events and isinstance(events[-1], RunFinished) else None
    if finished is not None:
        reported = [e.result for e in events if isinstance(e, ConfigFinished)]
        if list(finished.results) != reported:
            errors.append("RunFinished.results differ from the ConfigFinished results")
    return errors
