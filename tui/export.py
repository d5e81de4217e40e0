"""A saved session as other tools read it: ``latency-tui export SESSION --format
csv|markdown|json|svg``, and the TUI's screen as an SVG (``x``).

- ``csv``: NeuronPerf's report columns, in NeuronPerf's order, so that spreadsheets built on
  NeuronPerf's CSV keep working (``throughput_avg`` / ``throughput_peak`` from the per-second
  timeline, as NeuronPerf computes them; ``latency_ms_p0`` / ``p100`` are the min and max), then
  latency-tui's own columns (status, error kind, p99.9, copy mode, the run a row came from). A
  figure a session does not have (NeuronPerf's cost, a CPU median) is left empty, never 0.
- ``markdown``: one table for a pull request.
- ``json``: the same rows as the CSV, as a list of objects.
- ``svg``: per configuration, its latency histogram and its timeline (``tui.pictures``).

Like the other formats, an SVG goes to stdout unless ``--out`` names a file. There is no PNG:
that would need a rasteriser (matplotlib or cairo) this tool does not depend on; any browser
or ``rsvg-convert`` turns the SVG into one.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from latency_tui.core.api import ConfigResult, Session
from latency_tui.core.errors import single_line

NEURONPERF_COLUMNS = (
    "model_name", "n_models", "workers_per_model", "pipeline_size", "batch_size",
    "throughput_avg", "throughput_peak", "latency_ms_p0", "latency_ms_p50", "latency_ms_p90",
    "latency_ms_p95", "latency_ms_p99", "latency_ms_p100", "cpu_avg_percent", "cpu_percent_p50",
    "mem_avg_percent", "mem_percent_p50", "e2e_avg_ms", "infer_avg_ms", "total_infs", "total_s",
    "performance_level", "model_filename", "device_type", "instance_type", "cost_per_1m_inf",
)
OWN_COLUMNS = ("status", "error_kind", "latency_ms_p99_9", "samples_per_s", "copy_mode", "run")
FORMATS = ("csv", "markdown", "json", "svg")


def _mean(summary: Dict[str, Any], key: str) -> Optional[float]:
    entry = summary.get(key)
    return entry.get("mean") if isinstance(entry, dict) else None


def row(session: Session, result: ConfigResult) -> Dict[str, Any]:
    """One configuration as a flat row: NeuronPerf's columns, then latency-tui's."""
    config, latency, throughput = result.config, result.latency, result.throughput
    finished = latency is not None
    end_to_end = result.stages.get("end_to_end")
    usage = result.utilisation or {}
    details = result.details or {}
    device = details.get("device") if isinstance(details.get("device"), dict) else {}
    return {
        "model_name": session.model.get("name") or session.model.get("source"),
        "n_models": config.copies,
        "workers_per_model": config.workers_per_copy,
        "pipeline_size": config.device_options.get("pipeline_size", 1),
        "batch_size": config.batch_size,
        "throughput_avg": throughput.avg_samples_per_s if throughput else None,
        "throughput_peak": throughput.peak_samples_per_s if throughput else None,
        "latency_ms_p0": latency.min if finished else None,
        **{f"latency_ms_p{p}": latency[f"p{p}"] if finished else None for p in (50, 90, 95, 99)},
        "latency_ms_p100": latency.max if finished else None,
        "cpu_avg_percent": _mean(usage, "cpu"),
        "cpu_percent_p50": None,
        "mem_avg_percent": _mean(usage, "mem"),
        "mem_percent_p50": None,
        "e2e_avg_ms": (end_to_end or latency).mean if finished else None,
        "infer_avg_ms": latency.mean if finished else None,
        "total_infs": result.samples,
        "total_s": result.duration_s,
        "performance_level": None,
        "model_filename": session.model.get("source"),
        "device_type": config.device,
        "instance_type": details.get("instance_type") or device.get("instance_type"),
        "cost_per_1m_inf": None,
        "status": result.status,
        "error_kind": result.error_kind,
        "latency_ms_p99_9": latency["p99.9"] if finished else None,
        "samples_per_s": throughput.samples_per_s if throughput else None,
        "copy_mode": config.copy_mode,
        "run": session.run_of(result),
    }


def rows(session: Session) -> List[Dict[str, Any]]:
    return [row(session, result) for result in session.results]


def to_csv(session: Session) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=NEURONPERF_COLUMNS + OWN_COLUMNS,
                            lineterminator="\n")
    writer.writeheader()
    for each in rows(session):
        writer.writerow({k: "" if v is None else v for k, v in each.items()})
    return out.getvalue()


def to_json(session: Session) -> str:
    return json.dumps(rows(session), indent=2, allow_nan=False) + "\n"


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return single_line(value, 200).replace("|", "\\|")


def to_markdown(session: Session) -> str:
    title = f"{session.preset.get('name', '?')}: {session.model.get('source', '?')}"
    head = ("batch", "copies", "workers", "samples/s", "p50 ms", "p95 ms", "p99 ms",
            "p99.9 ms", "status")
    lines = [f"**{_cell(title)}** ({_cell(session.created)})", "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * (len(head) - 1) + "---|"]
    for each in rows(session):
        status = each["status"] + (f" ({each['error_kind']})" if each["error_kind"] else "")
        lines.append("| " + " | ".join(_cell(v) for v in (
            each["batch_size"], each["n_models"], each["workers_per_model"],
            each["samples_per_s"], each["latency_ms_p50"], each["latency_ms_p95"],
            each["latency_ms_p99"], each["latency_ms_p99_9"], status)) + " |")
    return "\n".join(lines) + "\n"


def to_svg(session: Session) -> str:
    from .pictures import to_svg as draw

    return draw(session)


def export(session: Session, fmt: str) -> str:
    return {"csv": to_csv, "markdown": to_markdown, "json": to_json, "svg": to_svg}[fmt](session)


def save_screen(app: Any, directory: Path) -> Optional[Path]:
    """The TUI's ``x``: what is on screen, as an SVG in ``directory`` (the user data
    directory's ``exports``), named by the time (``latency-tui-20250101-120000.svg``, then
    ``-2``, ``-3`` ... within one second). Says where in a toast and in the notices; a folder
    that cannot be written is an error notice, never a crash."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        svg = app.export_screenshot()
        for n in range(1, 1000):
            path = directory / f"latency-tui-{stamp}{'' if n == 1 else f'-{n}'}.svg"
            try:
                out = open(path, "x", encoding="utf-8")  # never replaces a file
            except FileExistsError:
                continue
            try:
                with out:
                    out.write(svg)
            except OSError:
                path.unlink(missing_ok=True)  # no half-written picture left behind
                raise
            break
        else:
            raise FileExistsError(f"{directory}/latency-tui-{stamp}-*.svg: all taken")
    except OSError as exc:
        words = f"could not export the screen to {directory}: {exc.strerror or exc}"
        app.notice("error", words)
        app.notify(single_line(words), severity="error", markup=False)
        return None
    app.notice("info", f"screen exported to {path}")
    app.notify(single_line(path), title="Screen exported to", markup=False)
    return path
