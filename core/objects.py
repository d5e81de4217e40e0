"""Python objects handed to the engine by reference: what the Python API and the pytest plugin
pass where a preset names a source.

Specs are plain data (they pickle into a copy process and serialise into the session), so a
model, inputs or a dataset given as an object is kept here and the spec holds its reference,
``object:N``. A reference is good only in the process that registered it: a copy process
cannot see it, which is why ``copy_mode="process"`` needs an importable model.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Dict, Tuple

from .errors import UserError

PREFIX = "object:"

_lock = threading.Lock()
_numbers = itertools.count(1)
_objects: Dict[str, Tuple[Any, str]] = {}


def register(value: Any, name: str) -> str:
    """Keep ``value`` and return its reference; ``name`` is how sessions and messages call it."""
    with _lock:
        ref = f"{PREFIX}{next(_numbers)}"
        _objects[ref] = (value, name)
    return ref


def is_reference(ref: Any) -> bool:
    return isinstance(ref, str) and ref.startswith(PREFIX)


def resolve(ref: str) -> Tuple[Any, str]:
    """The object and its name, or a ``UserError`` when this process does not hold it."""
    with _lock:
        found = _objects.get(ref)
    if found is None:
        raise UserError(
            f"{ref}: a Python object passed to latency_tui.benchmark exists only in the process "
            "that passed it (a copy process cannot see it: use copy_mode='thread', or a model "
            "source the copy can import, module:attr or path/file.py:attr)")
    return found


def release(*refs: Any) -> None:
    """Forget the objects (the run that used them is over)."""
    with _lock:
        for ref in refs:
            _objects.pop(ref, None)
