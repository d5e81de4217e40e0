"""From the display's model to what each pane draws: pure functions, no Textual.

Kept apart from the app so that the words the user reads (states, phases, the plan summary)
are decided in one place and can be tested without starting the app.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from latency_tui.core.api import Session
from latency_tui.core.specs import RunPlan

from .format import fmt_clock, fmt_model, fmt_values
from .live import LiveConfig, LiveRun, describe_remaining
from .widgets.gauges import GaugeData
from .widgets.header import HeaderInfo
from .widgets.results import ResultRow

RUN_STATES = {
    "starting": "STARTING", "running": "RUNNING", "stopping": "STOPPING",
    "finished": "FINISHED", "cancelled": "STOPPED", "failed": "FAILED",
}
PAUSED_NOTE = "DISPLAY PAUSED (space resumes)"


def plan_summary(plan: Optional[RunPlan]) -> str:
    """"4 configurations x 10 s": what pressing r will do."""
    if plan is None:
        return "no plan"
    n = len(plan.configs)
    stop = plan.stop
    each = f"{stop.duration_s:g} s" if stop.duration_s else f"{stop.samples} samples"
    return f"{n} configuration{'s' if n != 1 else ''} x {each}"


def status_word(live: LiveConfig) -> str:
    status = live.status
    if live.result is None and status == "measuring" and live.fraction is not None:
        return f"measuring {live.fraction:.0%}"
    return status


def phase_text(live: LiveConfig, plan: RunPlan) -> str:
    if live.phase == "measuring":
        duration = plan.stop.duration_s
        of = f" / {duration:g} s" if duration else ""
        return f"measuring {live.elapsed_s:.1f}{of}"
    if live.phase == "loading":
        return f"loading{(' ' + live.detail) if live.detail else ''}..."
    if live.phase == "warmup":
        return f"warming up{(': ' + live.detail) if live.detail else ''}..."
    return live.phase + (f" {live.detail}" if live.detail else "")


def gauge_data(live: Optional[LiveConfig]) -> GaugeData:
    if live is None:
        return GaugeData()
    result = live.result
    return GaugeData(
        summary=live.summary(),
        throughput=live.throughput(),
        samples=result.samples if result is not None and result.samples else live.count,
        elapsed_s=result.duration_s if result is not None else live.elapsed_s,
        cold_start_ms=live.first_inference_ms,
        warmup_iterations=live.warmup_iterations,
        warmup_stable=live.warmup_stable,
        final=result is not None,
        status=f"{live.config.label} · {status_word(live)}",
        error=result.error if result is not None and result.status == "failed" else None,
    )


def result_rows(configs: Iterable[LiveConfig]) -> List[ResultRow]:
    rows = []
    for order, live in enumerate(configs):
        summary = live.summary()
        throughput = live.throughput()
        config = live.config
        p = summary.percentiles if summary is not None else {}
        rows.append(ResultRow(
            key=live.key, batch=config.batch_size, copies=config.copies,
            workers=config.workers_per_copy,
            inf_s=throughput.inferences_per_s if throughput else None,
            samples_s=throughput.samples_per_s if throughput else None,
            p50=p.get("p50"), p90=p.get("p90"), p99=p.get("p99"),
            status=status_word(live), order=order,
        ))
    return rows


def view_header(path: Any, session: Session, focus: Optional[LiveConfig], paused: bool
                ) -> HeaderInfo:
    config = focus.config if focus else None
    return HeaderInfo(
        preset=str(session.preset.get("name", "?")),
        model=fmt_model(session.model, str(session.preset.get("model", ""))),
        device=config.device if config else "",
        batch=str(config.batch_size) if config else "",
        parallel=f"{config.copies} x {config.workers_per_copy}" if config else "",
        state="VIEWING", phase=getattr(path, "name", str(path)),
        created=session.created.replace("T", " ")[:16],
        note=PAUSED_NOTE if paused else "read-only; r runs the current preset",
    )


def live_header(preset: str, plan: Optional[RunPlan], run: Optional[LiveRun],
                elapsed_s: Optional[float], paused: bool) -> HeaderInfo:
    """The header for the current plan: before a run, the whole sweep; during one, the
    configuration in progress, its phase and the time left."""
    note = PAUSED_NOTE if paused else ""
    if plan is None:
        return HeaderInfo(preset=preset, note=note or "p picks a preset")
    if run is not None and run.plan is not plan and not run.active:
        run = None  # the plan changed since: describe the new one
    info: Dict[str, Any] = dict(
        preset=preset,
        model=fmt_model(run.model if run is not None else {}, plan.model.source),
        device=plan.configs[0].device if plan.configs else "",
        batch=fmt_values(plan.axis("batch_sizes")),
        parallel=f"{fmt_values(plan.axis('copies'))} x "
                 f"{fmt_values(plan.axis('workers'))}",
    )
    if run is None:
        return HeaderInfo(**info, note=note or f"{plan_summary(plan)}; r runs it")
    current = run.current_config()
    if current is not None and run.active:
        config = current.config
        info.update(device=config.device, batch=str(config.batch_size),
                    parallel=f"{config.copies} x {config.workers_per_copy}")
        position = f"config {current.index + 1}/{run.total}"
        phase = phase_text(current, run.plan)
    else:
        done = sum(1 for c in run.configs.values() if c.result is not None)
        position, phase = f"{done}/{run.total} configs", ""
        if run.state == "starting":  # the engine's process is starting (importing torch)
            phase = "starting the engine..."
    return HeaderInfo(
        **info, state=RUN_STATES[run.state], position=position, phase=phase,
        elapsed=fmt_clock(elapsed_s), remaining=describe_remaining(run) if run.active else "",
        note=note,
    )


def edit_values(plan: RunPlan) -> Dict[str, str]:
    """The edit form's fields as text, from the current plan."""
    return {
        "model": plan.model.source,
        "device": plan.configs[0].device if plan.configs else "",
        "batch_sizes": fmt_values(plan.axis("batch_sizes")),
        "copies": fmt_values(plan.axis("copies")),
        "workers": fmt_values(plan.axis("workers")),
        "duration_s": fmt_float(plan.stop.duration_s),
        "warmup_max_s": fmt_float(plan.warmup.max_s),
    }


def changed_fields(form: Dict[str, Any], shown: Dict[str, str]) -> Dict[str, Any]:
    """Only the fields the user changed, so that an untouched field keeps the preset's own
    details (a model's options stay with an unchanged model source)."""
    out = {}
    for key, value in form.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            text = fmt_values(value)
        elif isinstance(value, float):
            text = fmt_float(value)
        else:
            text = str(value)
        if text != shown.get(key, ""):
            out[key] = value
    return out


def fmt_float(value: Optional[float]) -> str:
    return "" if value is None else f"{value:g}"
