"""User preferences that persist: key remapping by binding id, in ``keys.toml`` in the user
config directory, e.g.::

    [keys]
    run = "R"            # binding id = key(s), comma-separated
    quit = "q,ctrl+q"

Reading it never stops the app: what cannot be read is kept, with the line TOML gives, in
``KeysFile.problems``, and ``keys.apply_keymap`` checks the entries themselves; the app shows
both as notices at start.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from latency_tui.core.api import config_dir

#: A keys.toml larger than this is not a key map.
MAX_BYTES = 64 * 1024

_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TABLE = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]")
_ENTRY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")


@dataclass
class KeysFile:
    """What keys.toml says: its ``[keys]`` entries as written (values unchecked), the line of
    each, and what is wrong with the file itself as (line or None, problem)."""

    path: Path
    entries: Dict[str, Any] = field(default_factory=dict)
    lines: Dict[str, int] = field(default_factory=dict)
    problems: List[Tuple[Optional[int], str]] = field(default_factory=list)


def load_keymap(path: Optional[Path] = None) -> KeysFile:
    """keys.toml (by default in the user config directory); no file is no entries."""
    path = Path(path) if path is not None else config_dir() / "keys.toml"
    keys = KeysFile(path)
    if not path.is_file():
        return keys
    try:
        raw = path.read_bytes()[:MAX_BYTES + 1]
        if len(raw) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES // 1024} KB")
        text = raw.decode("utf-8")
    except (OSError, ValueError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else \
            (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        keys.problems.append((None, f"cannot read it ({why}); using the default keys"))
        return keys
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _AT.search(message)
        keys.problems.append((int(found.group(1)) if found else None,
                              f"not valid TOML: {_AT.sub('', message)}; using the default keys"))
        return keys
    places = _places(text)
    for name, value in data.items():
        if name == "keys":
            continue
        table = isinstance(value, dict)
        keys.problems.append((places.get(("", name)), (
            f"[{name}] is not read (only [keys] is)" if table else
            f"{name} is outside the [keys] table; put it under [keys]")))
    table = data.get("keys", {})
    if not isinstance(table, dict):
        keys.problems.append((places.get(("", "keys")), "keys must be a table: [keys]"))
        return keys
    keys.entries = dict(table)
    keys.lines = {name: places[("keys", name)] for name in table if ("keys", name) in places}
    return keys


def _places(text: str) -> Dict[Tuple[str, str], int]:
    """(table, key) -> line of its first appearance; ("", name) for a table or a key at the
    top. Enough to point at a line: TOML itself gives lines only for syntax errors."""
    places: Dict[Tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = header.group(1).strip("\"'")
            places.setdefault(("", table), number)
            continue
        entry = _ENTRY.match(line)
        if entry:
            name = next(g for g in entry.groups() if g is not None)
            places.setdefault((table, name), number)
    return places
