"""``latency_tui.benchmark``: measure a model from a script, as ``latency-tui run`` does.

The plan comes from ``api.prepare`` (the command line's own ``build_plan``, overrides and
trial call), the run from ``api.start`` and the record from ``SessionRecorder``: what a script
gets is the session the command line would have written, with a progress bar on a terminal
(or none: ``progress=False``).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from ..core import api
from ..core.events import fan_out
from ..core.session import Session


def benchmark(model: Any, inputs: Any = None, *, progress: Optional[bool] = None,
              json: Optional[str] = None, **options: Any) -> Session:
    """Measure ``model`` on ``inputs`` and return the session (``to_json()``, ``table()``,
    ``results``). See the README's "Python API" for every keyword; they are the command
    line's: ``batch_sizes``, ``copies``, ``workers``, ``device``, ``duration``, ``samples``...

    ``progress``: a progress line on stderr (default: when stderr is a terminal).
    ``json``: also write the session to this path (else nothing is written).
    Bad input raises ``UserError`` before anything runs; a configuration that fails is a
    result with ``status == "failed"`` and its error, as on the command line.
    """
    from .headless import ProgressDisplay

    plan, prepared = api.prepare(model, inputs, **options)
    try:
        path = api.check_writable(json, what="json") if json else None
        recorder = api.SessionRecorder(path)
        show = sys.stderr.isatty() if progress is None else progress
        display = ProgressDisplay(sys.stderr) if show else None
        handle = api.start(plan, fan_out(*[s for s in (recorder, display) if s is not None]),
                           isolation="thread")
        try:
            while not handle.done:
                handle.wait(0.2)
        except KeyboardInterrupt:
            handle.stop()
            handle.wait()
            raise
        finally:
            recorder.close()
            if display is not None:
                display.close()
        if handle.error is not None:
            raise handle.error
        return recorder.session
    finally:
        prepared.release()
