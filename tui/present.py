"""From the display's model to what each pane draws: pure functions, no Textual.

Kept apart from the app so that the words the user reads (states, phases, the plan summary)
are decided in one place and can be tested without starting the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from rich.text import Text

from latency_tui.core.api import Session
from latency_tui.core.specs import RunPlan

from .format import fmt_clock, fmt_model, fmt_values
from .live import LiveConfig, LiveRun, describe_remaining
from .planstate import tui_words
from .widgets.gauges import GaugeData
from .widgets.header import HeaderInfo
from .widgets.results import ResultRow

RUN_STATES = {
    "starting": "STARTING", "running": "RUNNING", "stopping": "STOPPING",
    "finished": "FINISHED", "cancelled": "STOPPED", "failed": "FAILED",
}
PAUSED_NOTE = "DISPLAY PAUSED (space resumes)"
#: What the engine is doing, by phase, as a notice says it: "the engine is loading the model".
PHASE_WORDS = {"starting": "starting", "loading": "loading the model", "compiling": "compiling",
               "warmup": "warming up", "measuring": "measuring", "stopping": "measuring"}
#: Copy modes as the header says them: "copies 2 x workers 2 in processes".
MODE_WORDS = {"thread": "threads", "process": "processes"}


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
        text = f"measuring {live.fraction:.0%}"
        if live.early_stop is not None:  # how close early stop is: p99's interval vs its target
            width, target = live.early_stop
            text += (f" · p99 ±{width:.1f}% → {target:g}%" if width is not None
                     else f" · p99 interval not yet → {target:g}%")
        return text
    return status


def phase_text(live: LiveConfig, plan: RunPlan) -> str:
    if live.phase == "measuring":
        duration, samples = plan.stop.duration_s, plan.stop.samples
        text = f"measuring {live.elapsed_s:.1f}" + (f" / {duration:g} s" if duration else "")
        if samples:
            counted = f"{live.count:,} / {samples:,} samples"
            text = f"{text} · {counted}" if duration else f"measuring {counted}"
        return text
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
        error=tui_words(result.error or "failed")
        if result is not None and result.status == "failed" else None,
    )


@dataclass(frozen=True)
class RunRow(ResultRow):
    """A row that names its run: once the table holds more than one run, its "#" reads
    "2.3" (run 2, that run's third configuration)."""

    run_label: str = ""

    def cells(self, columns: Sequence[str]) -> List[Any]:
        out = super().cells(tuple(columns))
        if self.run_label and "number" in columns:
            out[list(columns).index("number")] = Text(self.run_label, justify="right")
        return out


def result_rows(configs: Iterable[LiveConfig]) -> List[ResultRow]:
    configs = list(configs)
    several = len({c.run_id for c in configs if c.run_id is not None}) > 1
    steps: Dict[int, int] = {}
    rows: List[ResultRow] = []
    for order, live in enumerate(configs):
        summary = live.summary()
        throughput = live.throughput()
        config = live.config
        p = summary.percentiles if summary is not None else {}
        label = ""
        if several and live.run_id is not None:
            steps[live.run_id] = steps.get(live.run_id, 0) + 1
            label = f"{live.run_id}.{steps[live.run_id]}"
        rows.append(RunRow(
            key=live.key, batch=config.batch_size, copies=config.copies,
            workers=config.workers_per_copy,
            inf_s=throughput.inferences_per_s if throughput else None,
            samples_s=throughput.samples_per_s if throughput else None,
            p50=p.get("p50"), p90=p.get("p90"), p99=p.get("p99"),
            status=status_word(live), order=order,
            warnings=tuple(summary.warnings) if summary is not None else (),
            run_label=label,
        ))
    return rows


def outcome(run: LiveRun) -> Dict[str, int]:
    """How many configurations of a run ended how: ok, failed, cancelled, skipped."""
    counts = {"ok": 0, "failed": 0, "cancelled": 0, "skipped": 0}
    for live in run.configs.values():
        status = live.result.status if live.result is not None else live.phase
        word = "ok" if status == "finished" else status
        if word in counts:
            counts[word] += 1
        elif not run.active:  # pending when the run ended: it never ran
            counts["skipped"] += 1
    return counts


def ended_words(run: LiveRun) -> Tuple[str, str]:
    """(state, position) of an ended run, never claiming more than happened: "FINISHED",
    "4/4 configs"; "FINISHED with errors", "2 ok, 1 failed of 3"; "FAILED"; "STOPPED"."""
    counts = outcome(run)
    total = run.total
    state = RUN_STATES.get(run.state, run.state.upper())
    if run.state == "finished" and counts["failed"]:
        state = "FAILED" if counts["ok"] == 0 else "FINISHED with errors"
    if counts["ok"] == total:
        return state, f"{total}/{total} configs"
    parts = [f"{counts['ok']} ok"] + [f"{n} {word}" for word, n in counts.items()
                                      if word != "ok" and n]
    return state, f"{', '.join(parts)} of {total}"


def view_header(path: Any, session: Session, focus: Optional[LiveConfig], paused: bool,
                current: Optional[HeaderInfo] = None) -> HeaderInfo:
    """A saved session's header. With ``current`` (the header of the current plan), the first
    line names what ``r`` runs, as it always does, and the second the file being viewed."""
    saved = str(session.preset.get("name", "?"))
    name = getattr(path, "name", str(path))
    if current is not None:
        return HeaderInfo(
            preset=current.preset, model=current.model, device=current.device,
            batch=current.batch, parallel=current.parallel, mode=current.mode,
            state="VIEWING", phase=f"{name}: preset {saved}",
            created=session.created.replace("T", " ")[:16],
            note=PAUSED_NOTE if paused else f"read-only; r runs preset {current.preset}",
        )
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
                elapsed_s: Optional[float], paused: bool, *, now: Optional[float] = None,
                waiting: str = "", again: str = "") -> HeaderInfo:
    """The header for the current plan: before a run, the whole sweep; during one, the
    configuration in progress, its phase and the time left; while stopping, what it waits
    for (``waiting``) and the key that ends it at once (``again``); after one, how each
    configuration ended."""
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
        mode="/".join(MODE_WORDS.get(m, m) for m in dict.fromkeys(
            c.copy_mode for c in plan.configs)),
    )
    if run is None:
        return HeaderInfo(**info, note=note or f"{plan_summary(plan)}; r runs it")
    current = run.current_config()
    state = RUN_STATES[run.state]
    if current is not None and run.active:
        config = current.config
        info.update(device=config.device, batch=str(config.batch_size),
                    parallel=f"{config.copies} x {config.workers_per_copy}",
                    mode=MODE_WORDS.get(config.copy_mode, config.copy_mode))
        position = f"config {current.index + 1}/{run.total}"
        phase = phase_text(current, run.plan)
    elif run.active:
        position, phase = f"0/{run.total} configs", ""
        if run.state == "starting":  # the engine's process is starting (importing torch)
            phase = "starting the engine..."
    else:
        state, position = ended_words(run)
        phase = ""
    remaining = describe_remaining(run, now) if run.active else ""
    if run.state == "stopping" and waiting:  # what it waits for, and how to end it now
        position, remaining = "", ""
        phase = f"{waiting}; {again}" if again else waiting
    return HeaderInfo(
        **info, state=state, position=position, phase=phase,
        elapsed=fmt_clock(elapsed_s), remaining=remaining, note=note,
    )


def edit_values(plan: RunPlan) -> Dict[str, str]:
    """The edit form's fields as text, from the current plan."""
    return {
        "model": plan.model.source,
        "device": plan.configs[0].device if plan.configs else "",
        "batch_sizes": fmt_values(plan.axis("batch_sizes")),
        "copies": fmt_values(plan.axis("copies")),
        "workers": fmt_values(plan.axis("workers")),
        "copy_mode": plan.configs[0].copy_mode if plan.configs else "",
        "duration_s": fmt_float(plan.stop.duration_s),
        "samples": str(plan.stop.samples) if plan.stop.samples else "",
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
