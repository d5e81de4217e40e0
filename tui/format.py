"""Pure formatting helpers shared by the panes, kept apart so that they can be tested with
plain parametrized tests and so that every pane writes a number the same way."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple


def fmt_ms(value: Optional[float]) -> str:
    """A latency in milliseconds with about four significant digits ("0.884", "12.41")."""
    if value is None or not math.isfinite(value):
        return "-"
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_rate(value: Optional[float]) -> str:
    """A rate per second: thousands separated, one decimal below 100."""
    if value is None or not math.isfinite(value):
        return "-"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_count(value: Optional[int]) -> str:
    return "-" if value is None else f"{value:,}"


def fmt_clock(seconds: Optional[float]) -> str:
    """Seconds as MM:SS, or H:MM:SS past an hour."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    total = max(0, int(round(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def fmt_interval(interval: Optional[Tuple[float, float]]) -> str:
    if interval is None:
        return ""
    return f"[{fmt_ms(interval[0])}, {fmt_ms(interval[1])}]"


def fmt_values(values: Tuple[int, ...]) -> str:
    """(1, 2, 4) -> "1,2,4", the form the sweep prompts accept back."""
    return ",".join(str(v) for v in values)


def _first(facts: Dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = facts.get(key)
        if value not in (None, ""):
            return value
    return None


def fmt_params(count: Any) -> str:
    try:
        n = float(count)
    except (TypeError, ValueError):
        return str(count)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.1f}{suffix}"
    return f"{n:.0f}"


def fmt_megabytes(mb: float) -> str:
    """Sizes of models from kilobytes to gigabytes: "13.6 kB", "418 MB", "1.3 GB"."""
    if mb < 1:
        return f"{mb * 1000:.1f} kB"
    if mb < 1000:
        return f"{mb:,.1f} MB" if mb < 100 else f"{mb:,.0f} MB"
    return f"{mb / 1000:.1f} GB"


def fmt_model(facts: Dict[str, Any], fallback: str = "") -> str:
    """"mlp (1.2M params, 4.8 MB)" from whatever the model loader reported.

    The loader's keys are read tolerantly (``name`` or ``source``; ``parameters`` or
    ``params``; ``size_mb``) so that a fact it does not know is left out, not faked.
    """
    name = _first(facts, "name", "source") or fallback or "?"
    extras = []
    params = _first(facts, "parameters", "params", "num_parameters")
    if params is not None:
        extras.append(f"{fmt_params(params)} params")
    size = _first(facts, "size_mb", "mb")
    if size is not None:
        try:
            extras.append(fmt_megabytes(float(size)))
        except (TypeError, ValueError):
            pass
    return f"{name} ({', '.join(extras)})" if extras else str(name)
