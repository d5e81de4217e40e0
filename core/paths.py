"""Where latency-tui keeps things of the user's: presets and keys in the config directory,
sessions and engine.log in the data directory (the platform's, e.g. ~/.config/latency-tui and
~/.local/share/latency-tui). One function names a new session's file, for every face."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional

APP_NAME = "latency-tui"


def config_dir() -> Path:
    try:
        from platformdirs import user_config_dir
    except ImportError:  # a bare host (a GPU box with only the engine's packages): XDG's way
        return _xdg("XDG_CONFIG_HOME", ".config")
    return Path(user_config_dir(APP_NAME))


def data_dir() -> Path:
    try:
        from platformdirs import user_data_dir
    except ImportError:
        return _xdg("XDG_DATA_HOME", ".local/share")
    return Path(user_data_dir(APP_NAME))


def _xdg(variable: str, fallback: str) -> Path:
    import os

    root = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(root) / APP_NAME


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def safe_name(name: str) -> str:
    """``name`` as one file name: a preset called ``team/model`` becomes ``team_model``."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".")
    return cleaned[:80] or "session"


def session_path(name: str, directory: Optional[Path] = None) -> Path:
    """A new session file for preset ``name``: ``NAME-YYYYmmdd-HHMMSS.json`` in ``directory``
    (the user's sessions directory by default), never one that exists already."""
    folder = Path(directory) if directory is not None else sessions_dir()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = folder / f"{safe_name(name)}-{stamp}.json"
    number = 2
    while candidate.exists():
        candidate = folder / f"{safe_name(name)}-{stamp}-{number}.json"
        number += 1
    return candidate
