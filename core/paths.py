"""Where latency-tui keeps things of the user's: presets and keys in the config directory,
sessions and engine.log in the data directory (the platform's, e.g. ~/.config/latency-tui and
~/.local/share/latency-tui). One function names a new session's file, for every face, and one
reads a file of the user's (a preset, a session) without hanging on a FIFO or a device."""

from __future__ import annotations

import datetime as _dt
import os
import stat
from pathlib import Path
from typing import Collection, List, Optional, Union

from .errors import UserError

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
    root = os.environ.get(variable) or str(Path.home() / fallback)
    return Path(root) / APP_NAME


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def safe_name(name: str) -> str:
    """``name`` as one file name: a preset called ``team/model`` becomes ``team_model``."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".")
    return cleaned[:80] or "session"


def session_path(name: str, directory: Optional[Path] = None,
                 taken: Collection[Path] = ()) -> Path:
    """A new session file for preset ``name``: ``NAME-YYYYmmdd-HHMMSS.json`` in ``directory``
    (the user's sessions directory by default), never one that exists already nor one of
    ``taken`` (handed out, its first write still to come)."""
    folder = Path(directory) if directory is not None else sessions_dir()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = folder / f"{safe_name(name)}-{stamp}.json"
    number = 2
    while candidate.exists() or candidate in taken:
        candidate = folder / f"{safe_name(name)}-{stamp}-{number}.json"
        number += 1
    return candidate


def read_regular_file(path: Union[str, "os.PathLike[str]"], limit: int, where: str) -> bytes:
    """The bytes of the regular file at ``path`` (a symbolic link is followed), at most ``limit``
    of them. Anything else is a ``UserError`` starting with ``where``, before a byte is read: a
    FIFO (reading it would wait for a writer), a device (``/dev/zero`` never ends), a
    directory, a socket, a symbolic link loop, a file larger than ``limit``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:  # non-blocking: opening a FIFO does not wait for a writer (regular files ignore it)
        fd = os.open(os.fspath(path), flags)
    except OSError as exc:
        raise UserError(f"{where}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else
                    "not a regular file (a device, FIFO or socket)")
            raise UserError(f"{where}: is {kind}")
        chunks: List[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UserError(f"{where}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        shown = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} kB"
        raise UserError(f"{where}: larger than {shown}")
    return b"".join(chunks)
