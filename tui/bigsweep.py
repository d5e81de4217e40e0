"""A confirmation before a large sweep: how many configurations, and about how long.

A sweep typed in a prompt or the edit form can multiply into hundreds of configurations or
hours of measuring (batch sizes x copies x workers). The core refuses what a host cannot run
(``core/limits.py``, at planning); what it can run but would take long is the user's call, so
past ``MAX_CONFIGS`` configurations or ``MAX_SECONDS`` of estimated time the app asks first,
naming both. No Textual here but the screen it pushes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from latency_tui.core import api
from latency_tui.core.errors import UserError
from latency_tui.core.specs import RunPlan

from .screens import ConfirmScreen

#: Past either, a sweep asks before it runs.
MAX_CONFIGS = 50
MAX_SECONDS = 30 * 60.0


def estimate_s(plan: RunPlan) -> Optional[float]:
    """About how long ``plan`` takes: each configuration's measuring time and its warm-up's
    bound (loading is not known before a run); None when it stops on a sample count only."""
    duration = plan.stop.duration_s
    if not duration:
        return None
    return len(plan.configs) * (duration + (plan.warmup.max_s or 0.0))


def fmt_about(seconds: float) -> str:
    """"about 1 h 10 min", "about 45 min", "about 20 s"."""
    total = int(round(seconds))
    if total < 120:
        return f"about {total} s"
    hours, minutes = divmod(int(round(total / 60.0)), 60)
    if hours:
        return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"
    return f"about {minutes} min"


def question(plan: RunPlan, ask: str) -> Optional[str]:
    """The question to ask before ``plan`` (None: small enough to go ahead without one)."""
    n = len(plan.configs)
    seconds = estimate_s(plan)
    if n <= MAX_CONFIGS and (seconds is None or seconds <= MAX_SECONDS):
        return None
    took = f", {fmt_about(seconds)} of measuring and warm-up" if seconds is not None else ""
    return f"This sweep has {n} configurations{took}. {ask}"


def confirm_changes(app: Any, changes: Dict[str, Any], ask: str,
                    go: Callable[[], None]) -> None:
    """Call ``go`` (which applies ``changes``) at once when the plan they make is small; when
    it is large, only once the user says yes to ``ask`` (no: nothing changes)."""
    plans = app.plans
    try:
        plan = api.plan_with(plans.preset, {**plans.overrides, **changes}) \
            if plans.preset is not None else None
    except UserError:
        plan = None  # go() applies the changes and says what is wrong with them
    text = question(plan, ask) if plan is not None else None
    if text is None:
        go()
        return

    def answer(yes: Optional[bool]) -> None:
        if yes:
            go()
        else:
            app.notice("info", "not run: the plan is as it was")

    app.push_screen(ConfirmScreen(text), answer)
