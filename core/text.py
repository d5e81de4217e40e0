"""Text from outside (model errors, preset names, model sources, session files) made safe to show.

Such text is shown as text: never interpreted as Rich or Textual markup (``[/bold]`` in a path is
a path), and never passed to the terminal with its control characters (an escape sequence in a
session file must not recolour, move or retitle the user's terminal). ``printable`` writes every
control character as a visible escape (``\\x1b``); views wrap the result in a ``Text`` object,
which no renderer parses for markup.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls; and the Unicode bidirectional overrides,
# which can make a file name read backwards.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_OR_BREAK = re.compile(f"[{_CONTROLS}\t\n\r]")


def printable(value: object, *, newlines: bool = True) -> str:
    """``str(value)`` with control characters written as escapes; with ``newlines=False``,
    newlines and tabs too (for one-line fields)."""
    return (_CONTROL if newlines else _CONTROL_OR_BREAK).sub(_escape, str(value))


def single_line(value: object, limit: int = 400) -> str:
    """A printable single line of at most ``limit`` characters."""
    text = printable(value, newlines=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _escape(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
