"""The edit form's fields, and reading one field's text; no Textual.

Each field is an override of the plan builder (``core.api.Overrides``): the form shows the
plan's values as text (``present.edit_values``) and hands back only what the user changed.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

from latency_tui.core.errors import UserError

#: The form's fields: (override key, label, kind). Lists take "1,2,4"; floats take seconds;
#: "int" one whole number; the device and the copy mode are picked from a list.
EDIT_FIELDS: Tuple[Tuple[str, str, str], ...] = (
    ("model", "model", "text"),
    ("device", "device", "choice"),
    ("batch_sizes", "batch sizes", "ints"),
    ("copies", "copies", "ints"),
    ("workers", "workers per copy", "ints"),
    ("copy_mode", "copy mode", "choice"),
    ("duration_s", "duration (s)", "float"),
    ("samples", "samples", "int"),
    ("warmup_max_s", "warm-up max (s)", "float"),
)

#: The copy modes as the form offers them: (label, value).
COPY_MODES = (("threads (one process)", "thread"), ("processes (one per copy)", "process"))


def parse_field(kind: str, label: str, text: str,
                parse_ints: Callable[[str, str], Tuple[int, ...]]) -> Any:
    """One text field's value (None when empty); ``UserError`` naming the field when wrong."""
    if not text:
        return None
    if kind == "ints":
        return parse_ints(text, label)
    if kind == "int":
        values = parse_ints(text, label)
        if len(values) != 1:
            raise UserError(f"{label}: one whole number, not {text!r}")
        return values[0]
    if kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{label}: {text!r} is not a number") from None
        if not value > 0:
            raise UserError(f"{label}: must be more than 0")
        return value
    return text
