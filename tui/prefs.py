"""User preferences that persist: key remapping by binding id, in ``keys.toml`` in the user
config directory, e.g.::

    [keys]
    run = "R"            # binding id = key(s), comma-separated
    quit = "q,ctrl+q"
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional

from latency_tui.core.api import config_dir


def load_keymap(path: Optional[Path] = None) -> Dict[str, str]:
    """The [keys] table of keys.toml, or {} when there is none; a broken file is reported on
    stderr and ignored (a typo in a preference must not keep the app from starting)."""
    path = path or config_dir() / "keys.toml"
    if not path.is_file():
        return {}
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python < 3.11
            import tomli as tomllib
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except Exception as exc:
        print(f"latency-tui: ignoring {path}: {exc}", file=sys.stderr)
        return {}
    keys = data.get("keys", {})
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}
