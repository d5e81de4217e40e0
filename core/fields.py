"""Typed reads from parsed JSON or TOML, with errors that name the file and the field.

Sessions and presets come from other people and other versions: every value is checked for its
type and range as it is read, so that a wrong one is a one-line ``UserError`` naming where it is
(``session.json: results[2].latency_ms.p99: must be a finite number, not 'fast'``), never a
traceback, and never a wrong value accepted silently.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .errors import UserError

#: Larger integers than this are typos or attacks, not counts (and overflow numpy's int64).
MAX_INT = 2 ** 62


class Fields:
    """One JSON object (or TOML table), read field by field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise UserError(f"{where}: must be an object, not {_kind(data)}")
        self.data: Dict[str, Any] = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def fail(self, key: str, message: str) -> UserError:
        return UserError(f"{self.path(key)}: {message}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def number(self, key: str, default: Any = ..., *, integer: bool = False,
               minimum: Optional[float] = None) -> Any:
        """A finite number (an int when ``integer``), at least ``minimum``; ``default`` when
        the key is absent or null (required when no default is given)."""
        value = self._get(key, default)
        if value is None:
            return None
        return check_number(value, self.path(key), integer=integer, minimum=minimum)

    def string(self, key: str, default: Any = ...) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {_kind(value)}")
        return value

    def boolean(self, key: str, default: Any = ...) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {_kind(value)}")
        return value

    def table(self, key: str, default: Any = ...) -> Optional["Fields"]:
        value = self._get(key, default)
        if value is None:
            return None
        return Fields(value, self.path(key))

    def items(self, key: str, default: Any = ...) -> List[Tuple[str, Any]]:
        """The (name, value) pairs of an object field."""
        table = self.table(key, default)
        return [] if table is None else list(table.data.items())

    def array(self, key: str, default: Any = ...) -> List[Any]:
        value = self._get(key, default)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, not {_kind(value)}")
        return value

    def numbers(self, key: str, *, integer: bool = False, minimum: Optional[float] = None,
                nullable: bool = False, default: Any = ...) -> Tuple[Any, ...]:
        out = []
        for i, value in enumerate(self.array(key, default)):
            if value is None and nullable:
                out.append(None)
            else:
                out.append(check_number(value, f"{self.path(key)}[{i}]", integer=integer,
                                        minimum=minimum))
        return tuple(out)

    def strings(self, key: str, default: Any = ...) -> Tuple[str, ...]:
        out = []
        for i, value in enumerate(self.array(key, default)):
            if not isinstance(value, str):
                raise UserError(f"{self.path(key)}[{i}]: must be a string, not {_kind(value)}")
            out.append(value)
        return tuple(out)

    def tables(self, key: str, default: Any = ...) -> Iterator["Fields"]:
        for i, value in enumerate(self.array(key, default)):
            yield Fields(value, f"{self.path(key)}[{i}]")

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        return value


def check_number(value: Any, where: str, *, integer: bool = False,
                 minimum: Optional[float] = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a finite number"
        raise UserError(f"{where}: must be {kind}, not {_kind(value)}")
    if integer and not isinstance(value, int):
        if not (math.isfinite(value) and value == int(value)):
            raise UserError(f"{where}: must be an integer, not {value!r}")
        value = int(value)
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise UserError(f"{where}: {value} is out of range")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: must be a finite number, not {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"{where}: must be at least {minimum:g}, not {value!r}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
