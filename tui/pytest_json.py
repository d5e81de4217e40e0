"""``--latency-json``: one session of a pytest run's measurements, and pytest-xdist workers'
measurements back in the controller.

``combined`` makes the session: run ``i`` is the ``i``-th measured test, each result's
``trial`` naming its ``test``. A pytest-xdist worker hands its measurements over as that
session's text; the controller takes it apart again (``measured_from``) into the
``(nodeid, session, result)`` of each test, as if measured in its own process, and writes one
session of them all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, List, Tuple

#: What ``combined`` adds to each run and result, taken off again.
ADDED = ("id", "test", "model")


def measured_from(text: str) -> List[Tuple[str, Any, Any]]:
    """``(nodeid, session, result)`` of each test a worker measured, from its session text."""
    from latency_tui.core.session import Session

    worker = Session.from_dict(json.loads(text), where="a pytest-xdist worker's measurements")
    out = []
    for run, result in zip(worker.runs, worker.results):
        session = Session(preset=dict(worker.preset), host=dict(worker.host),
                          model=dict(run.get("model") or {}),
                          runs=[{k: v for k, v in run.items() if k not in ADDED}])
        trial = {k: v for k, v in (result.trial or {}).items() if k not in ("run", *ADDED)}
        out.append((str(run.get("test")), session, replace(result, trial=trial)))
    return out


def combined(measured: List[Tuple[str, Any, Any]]) -> Any:
    """One session of every test's measurement: run ``i`` is the ``i``-th measured test (its
    plan, its model), and each result's ``trial`` names its ``test`` and ``model``."""
    from latency_tui.core.session import Session

    out = Session(preset={"name": "pytest", "origin": "pytest", "path": None,
                          "description": "the latency fixture's measurements of a pytest session"},
                  model={"source": "pytest", "name": f"{len(measured)} tests", "parameters": None,
                         "size_mb": None})
    for run, (nodeid, session, result) in enumerate(measured, start=1):
        out.host = out.host or dict(session.host)
        plan = dict(session.runs[0]) if session.runs else {"configurations": 1}
        out.runs.append({**plan, "id": run, "test": nodeid, "model": dict(session.model)})
        out.results.append(replace(result, trial={**(result.trial or {}), "run": run,
                                                  "test": nodeid,
                                                  "model": session.model.get("name")}))
    return out
