"""The headless face of the engine: a progress display and a results table, for SSH sessions,
scripts and CI. It reads the same event stream as the TUI.

On a terminal the progress is a live line per configuration (rich); otherwise plain lines, one
per phase and one every few seconds while measuring, so that logs stay readable.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Iterable, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core.api import ConfigResult
from ..core.errors import printable, single_line
from ..core.events import (
    ConfigFinished, ConfigStarted, Event, PhaseChanged, Progress, RunFinished, RunStarted,
    SearchUpdated, Utilisation, WarmupFinished,
)

PLAIN_PROGRESS_EVERY_S = 5.0
LIVE_REFRESH_S = 0.5


def _fmt_ms(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.1f}"
    if value >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def offered_rate(result: ConfigResult) -> Optional[str]:
    """An open-loop result's intended rate and arrivals ("200/s poisson"), None in closed
    loop; from the result's details, so that a saved session shows it too."""
    loop = result.details.get("open_loop") if isinstance(result.details, dict) else None
    if not isinstance(loop, dict) or not isinstance(loop.get("intended_rate_per_s"), (int, float)):
        return None
    return f"{loop['intended_rate_per_s']:,.4g}/s {single_line(loop.get('arrivals', ''))}".strip()


def results_table(results: Iterable[ConfigResult], title: Optional[str] = None) -> Table:
    """The results as a rich table: one row per configuration; with a "rate" column (the
    offered rate) when a configuration ran in open loop, where latency counts from each
    request's scheduled time and inf/s is the rate achieved."""
    results = list(results)
    table = Table(title=Text(single_line(title)) if title else None, header_style="bold",
                  show_lines=False)
    rates = [offered_rate(r) for r in results]
    open_loop = any(rates)
    for name in ("batch", "copies", "workers", *(("rate",) if open_loop else ()), "inf/s",
                 "samples/s", "p50 ms", "p90 ms", "p99 ms", "inferences", "status"):
        table.add_column(name, justify="left" if name == "status" else "right")
    for result, rate in zip(results, rates):
        c, lat, thr = result.config, result.latency, result.throughput
        status = result.status if not result.error else f"{result.status}: {result.error}"
        table.add_row(
            str(c.batch_size), str(c.copies), str(c.workers_per_copy),
            *((rate or "closed",) if open_loop else ()),
            f"{thr.inferences_per_s:,.1f}" if thr else "-",
            f"{thr.samples_per_s:,.1f}" if thr else "-",
            _fmt_ms(lat["p50"] if lat else None), _fmt_ms(lat["p90"] if lat else None),
            _fmt_ms(lat["p99"] if lat else None), f"{result.samples:,}", Text(single_line(status)),
        )
    return table


class ProgressDisplay:
    """An event sink that shows how the run proceeds on ``stream`` (stderr by default)."""

    def __init__(self, stream: Optional[IO[str]] = None, *, live: Optional[bool] = None) -> None:
        self.console = Console(file=stream, stderr=stream is None, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self._lock = threading.Lock()
        self._status = ""
        self._total = 0
        self._index = 0
        self._last_plain = 0.0
        self._live = None
        self._utilisation = ""

    # The engine calls this from its own thread: it only formats a line and returns. A terminal
    # that went away (SIGHUP) ends the display, never the run.
    def __call__(self, event: Event) -> None:
        try:
            self._show(event)
        except OSError:
            pass

    def _show(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, RunStarted):
                self._total = len(event.plan.configs)
                self._line(f"latency-tui: preset {event.plan.name}, model {event.plan.model.source}, "
                           f"{self._total} configuration(s)", force=True)
                self._start_live()
            elif isinstance(event, ConfigStarted):
                self._index = event.index
                of = f"/{event.total}" if event.total else ""
                self._status = f"[{event.index + 1}{of}] {event.config.device} {event.config.label}"
                self._line(f"{self._status}: starting", force=True)
            elif isinstance(event, PhaseChanged):
                detail = f" ({event.detail})" if event.detail else ""
                self._line(f"{self._status}: {event.phase}{detail}", force=True)
            elif isinstance(event, WarmupFinished):
                stable = "stable" if event.stable else "NOT stable"
                self._line(f"{self._status}: warm-up {event.iterations} iterations, {stable}, "
                           f"first inference {_fmt_ms(event.first_inference_ms)} ms", force=True)
            elif isinstance(event, Progress):
                fraction = f" {event.fraction * 100:3.0f}%" if event.fraction is not None else ""
                rate = event.samples / event.elapsed_s if event.elapsed_s > 0 else 0.0
                self._line(f"{self._status}: measuring{fraction}, {event.samples:,} inferences, "
                           f"{event.elapsed_s:.1f} s, {rate:,.0f} inf/s{early_stop_text(event)}"
                           f"{self._utilisation}", force=False)
            elif isinstance(event, Utilisation):
                self._utilisation = utilisation_text(event.groups)
            elif isinstance(event, ConfigFinished):
                r = event.result
                tail = f" - {r.error}" if r.error else ""
                p99 = f", p99 {_fmt_ms(r.latency['p99'])} ms" if r.latency else ""
                self._line(f"{self._status}: {r.status}, {r.samples:,} inferences{p99}{tail}", force=True)
            elif isinstance(event, SearchUpdated) and event.outcome.get("trials"):
                self._line(f"search: {single_line(event.outcome.get('summary', ''), 400)}",
                           force=True)
            elif isinstance(event, RunFinished):
                self._stop_live()

    def _start_live(self) -> None:
        if self.live:
            from rich.live import Live

            # No refresh thread: it would compete with thread copies' timing loops for the GIL.
            self._live = Live(Text(""), console=self.console, auto_refresh=False, transient=True)
            self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _line(self, text: str, *, force: bool) -> None:
        if self._live is not None:
            now = time.monotonic()
            if force:
                self._live.console.print(Text(printable(text)))
            refresh = force or now - self._last_plain >= LIVE_REFRESH_S
            if refresh:
                self._last_plain = now
            self._live.update(Text(printable(text)), refresh=refresh)
            return
        now = time.monotonic()
        if force or now - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
            self._last_plain = now
            self.console.print(Text(printable(text)), soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            try:
                self._stop_live()
            except OSError:
                pass


def early_stop_text(event: Progress) -> str:
    """", p99 +-7.2 % (stops at 5 %)": how close early stop is, for the progress line; "" when
    early stop is off (older engines send no such field)."""
    target = getattr(event, "early_stop_target", None)
    if target is None:
        return ""
    width = getattr(event, "early_stop", None)
    shown = "not bounded yet" if width is None else f"+-{width:.1f} %"
    return f", p99 {shown} (stops at {target:g} %)"


def utilisation_text(groups) -> str:
    """", cpu 87%, mem 41%, gpu0 91%, gpu1 88%": for the progress line, each monitor's summary
    reading where it has one (cpu, mem), else its devices (up to four by name, more as their
    mean and max, so that eight GPUs or sixteen NeuronCores still fit one line)."""
    parts = []
    for name, readings in groups:
        known = [r for r in readings if r.percent is not None]
        if not known:
            continue
        if not known[0].label[-1:].isdigit():  # a summary of the group comes first
            parts.append(f"{known[0].label} {known[0].percent:.0f}%")
        elif len(known) <= 4:
            parts.extend(f"{r.label} {r.percent:.0f}%" for r in known)
        else:
            values = [r.percent for r in known]
            parts.append(f"{name} x{len(values)} mean {sum(values) / len(values):.0f}% "
                         f"max {max(values):.0f}%")
    return "".join(f", {part}" for part in parts)


def output_console() -> Console:
    """The console for tables on stdout: as wide as the terminal, or wide enough that a
    table piped into a file or a CI log is not cut into ellipses."""
    console = Console()
    return console if console.is_terminal else Console(width=160)
