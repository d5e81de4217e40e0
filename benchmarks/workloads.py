"""Torch-free workloads for the benchmarks: a copy process that loads one of these starts in a
fraction of a second (no torch to import), so the scaling benchmark measures copies, not
imports. Loadable as ``path/to/benchmarks/workloads.py:python_bound``."""

from __future__ import annotations

from typing import Any, Callable, Tuple

#: Python loop iterations per call: about 150 us of pure-Python work on the project's 2-core
#: machines. Fixed work, not a fixed time, so that throughput measures CPU.
PYTHON_WORK = 5000


def python_bound() -> Tuple[Callable[[], Any], Tuple[()]]:
    """A model whose every call is a fixed amount of pure-Python work, holding the GIL
    throughout (thread copies cannot scale it, process copies can), with no inputs."""

    def forward() -> int:
        total = 0
        for i in range(PYTHON_WORK):
            total += i
        return total

    return forward, ()
