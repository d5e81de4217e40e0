"""What the user's model prints, kept apart from what latency-tui says.

During a headless run, file descriptors 1 and 2 of the process (and so of every copy process it
spawns) point at a log file; latency-tui's own progress and messages go to a duplicate of the
real stderr, and its results table to the real stdout once the run is over. A model that prints
on every call cannot then scroll the progress away or interleave with the table, and a library's
warning cannot read as latency-tui's.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO, Iterator, Optional


@contextlib.contextmanager
def user_output_to(log: Optional[Path]) -> Iterator[IO[str]]:
    """Send fds 1 and 2 to ``log`` (appended) and yield a stream on the real stderr. With no
    log, or when stdout and stderr are not the process's own (a test harness captured them),
    nothing is redirected and the stream is ``sys.stderr``."""
    if log is None or sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        yield sys.stderr
        return
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "ab")
    except OSError:
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    tool = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(handle.fileno(), 1)
    os.dup2(handle.fileno(), 2)
    try:
        yield tool
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        handle.close()
        try:
            tool.close()
        except OSError:
            pass


def printed_since(log: Optional[Path], size: int) -> int:
    """Lines the log gained past ``size`` bytes."""
    if log is None or not log.is_file():
        return 0
    with open(log, "rb") as handle:
        handle.seek(size)
        return handle.read().count(b"\n")
