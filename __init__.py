"""latency-tui: how fast a model really is, on CPU, CUDA and AWS Inferentia.

The repository root is the package ``latency_tui``: ``core/`` measures, ``tui/`` shows,
``presets/`` holds the built-in presets. From a script::

    import latency_tui

    session = latency_tui.benchmark(model, inputs, batch_sizes=(1, 8), duration=5)
    for row in session.table(): print(row)

Importing this package imports nothing heavy (no torch, no Textual): ``benchmark`` loads what
it needs when it is called.
"""

from typing import Any

from .core import __version__


def benchmark(model: Any, inputs: Any = None, **options: Any) -> Any:
    """Measure ``model`` on ``inputs``; returns the session. See ``latency_tui.tui.pyapi``."""
    from .tui.pyapi import benchmark as run

    return run(model, inputs, **options)


__all__ = ["__version__", "benchmark"]
