"""The kinds of failure the user can meet, kept apart because they end differently, and the one
function that turns an exception into the line the user reads.

``UserError`` is bad input (a preset field, a model spec, an argument): the command line prints
its one-line message and exits 2 before anything is written. ``ConfigurationError`` is a
configuration that failed while running (the model raised, a copy died): the engine records it
on that configuration's result, with an ``error_kind``, and goes on with the others.
"""

from __future__ import annotations

import traceback as _traceback
from typing import Optional

from .text import printable, single_line  # how views show any text from outside

__all__ = [
    "ERROR_KINDS", "ConfigurationError", "UserCodeExit", "UserError", "describe_error", "error_kind",
    "format_traceback", "one_line", "printable", "single_line",
]

#: What ``ConfigResult.error_kind`` may say: how a configuration failed, for a program to read.
ERROR_KINDS = (
    "error",          # the model, a step or the device raised
    "out_of_memory",  # the device or host ran out of memory
    "timeout",        # an inference took longer than its timeout
    "copy_died",      # a copy process ended without saying why
    "compile",        # the compile step failed
    "exit",           # user code called sys.exit() or raised KeyboardInterrupt
)


class UserError(Exception):
    """Bad input; the message names the file, field or argument at fault."""


class UserCodeExit(UserError):
    """The user's model code called ``sys.exit()`` (or raised KeyboardInterrupt off the main
    thread) while it was imported or built: its failure, never latency-tui's own exit."""


class ConfigurationError(Exception):
    """One configuration of a run could not be measured.

    ``kind`` is one of ``ERROR_KINDS``; ``details`` the traceback of the cause, when there is one.
    """

    def __init__(self, message: str, kind: str = "error", details: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details


def one_line(exc: BaseException) -> str:
    """``"TypeError: first line of the message"``: how every failure is shown in one line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """The line a failed configuration reports: a ``ConfigurationError`` or ``UserError`` says
    what it says; anything else is its type and the first line of its message."""
    if isinstance(exc, (ConfigurationError, UserError)):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"the model's code called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "the model's code raised KeyboardInterrupt"
    return one_line(exc)


def error_kind(exc: BaseException) -> str:
    """The ``ERROR_KINDS`` entry an exception belongs to."""
    if isinstance(exc, ConfigurationError):
        return exc.kind
    if isinstance(exc, (SystemExit, KeyboardInterrupt, UserCodeExit)):
        return "exit"
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return "out_of_memory"
    return "error"


def format_traceback(exc: BaseException) -> str:
    """The full traceback of ``exc``, for engine.log and the session (never printed raw)."""
    if isinstance(exc, ConfigurationError) and exc.details:
        return exc.details
    return "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
