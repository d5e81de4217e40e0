"""The headless face of the engine: a progress display and a results table, for SSH sessions,
scripts and CI. It reads the same event stream as the TUI.

On a terminal the progress is a live line per configuration (rich); otherwise plain lines, one
per phase and one every few seconds while measuring, so that logs stay readable.
"""

from __future__ import annotations

import math
import threading
import time
from typing import IO, Any, Iterable, Mapping, Optional, Sequence, Tuple

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..core.api import ConfigResult
from ..core.errors import printable, single_line
from ..core.events import (
    ConfigFinished, ConfigStarted, Event, PhaseChanged, Progress, RunFinished, RunStarted,
    SearchUpdated, Utilisation, WarmupFinished,
)
from .format import fmt_params

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


#: The results table's columns, by the name ``--columns`` takes, with their headers.
#: Latencies are in milliseconds; ``mean`` is the mean and the standard deviation together.
COLUMNS = {
    "config": "config", "device": "device", "batch": "batch", "copies": "copies",
    "workers": "workers", "rate": "rate", "inf/s": "inf/s", "samples/s": "samples/s",
    "p50": "p50 ms", "p90": "p90 ms", "p95": "p95 ms", "p99": "p99 ms", "p99.9": "p99.9 ms",
    "mean": "mean +- std ms", "min": "min ms", "max": "max ms", "inferences": "inferences",
    "status": "status",
}
#: Other names ``--columns`` understands for a column.
COLUMN_ALIASES = {"std": "mean", "label": "config", "samples": "inferences",
                  "throughput": "samples/s"}
#: What the table shows when no columns are picked (and "rate" after "workers" when a
#: configuration ran in open loop): a typical sweep fits 100 columns.
DEFAULT_COLUMNS = ("batch", "copies", "workers", "inf/s", "samples/s", "p50", "p95", "p99",
                   "mean", "status")
#: Columns that say which configuration a row is; a pick without one gets "config" first.
IDENTITY_COLUMNS = ("config", "batch", "copies", "workers", "rate")


def parse_columns(text: str) -> Tuple[str, ...]:
    """``"p50,p99"`` -> ("p50", "p99"): the columns picked, in order; ValueError naming an
    unknown one and listing those known."""
    picked = []
    for part in str(text).split(","):
        name = part.strip().lower()
        if not name:
            continue
        name = COLUMN_ALIASES.get(name, name)
        if name not in COLUMNS:
            raise ValueError(f"unknown column {single_line(part.strip(), 40)!r}; known: "
                             f"{', '.join(COLUMNS)}")
        picked.append(name)
    if not picked:
        raise ValueError(f"no column named; known: {', '.join(COLUMNS)}")
    return tuple(dict.fromkeys(picked))


def _count(value: Any) -> Optional[float]:
    """A finite non-negative number from a file's field, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def model_title(name: str, model: Optional[Mapping[str, Any]], source: str = "?") -> str:
    """"cpu-mlp: builtin:mlp (mlp, 1.2M parameters, 4.8 MB; MB = 10^6 bytes)": the preset and
    the model with what is known of it (a plain callable has neither parameters nor size)."""
    model = model if isinstance(model, Mapping) else {}
    named = model.get("source")
    source = named if isinstance(named, str) and named else source
    facts = []
    label = model.get("name")
    if isinstance(label, str) and label.strip() and label != source:
        facts.append(label)
    parameters = _count(model.get("parameters"))
    if parameters is not None:
        facts.append(f"{fmt_params(parameters)} parameters")
    size = _count(model.get("size_mb"))
    if size is not None:
        shown = f"{size:,.0f}" if size >= 100 else f"{size:.1f}" if size >= 1 else f"{size:.3g}"
        facts.append(f"{shown} MB; MB = 10^6 bytes")
    return f"{name}: {source}" + (f" ({', '.join(facts)})" if facts else "")


def _latency(result: ConfigResult, key: str) -> str:
    summary = result.latency
    if summary is None:
        return "-"
    if key == "mean":
        return f"{_fmt_ms(summary.mean)} +- {_fmt_ms(summary.std)}"
    if key in ("min", "max"):
        return _fmt_ms(getattr(summary, key))
    return _fmt_ms(summary.percentiles.get(key))


def _cell(name: str, result: ConfigResult, rate: Optional[str]) -> Any:
    c, thr = result.config, result.throughput
    if name == "config":
        return Text(single_line(c.label))
    if name == "device":
        return Text(single_line(c.device))
    if name in ("batch", "copies", "workers"):
        return str({"batch": c.batch_size, "copies": c.copies, "workers": c.workers_per_copy}[name])
    if name == "rate":
        return Text(rate or "closed")
    if name in ("inf/s", "samples/s"):
        return "-" if thr is None else \
            f"{thr.inferences_per_s if name == 'inf/s' else thr.samples_per_s:,.1f}"
    if name == "inferences":
        return f"{result.samples:,}"
    if name == "status":
        return Text(single_line(result.status if not result.error
                                else f"{result.status}: {result.error}"))
    return _latency(result, name)


def results_table(results: Iterable[ConfigResult], title: Optional[str] = None,
                  columns: Optional[Sequence[str]] = None) -> Table:
    """The results as a rich table: one row per configuration, the ``columns`` picked (names of
    ``COLUMNS``, from ``parse_columns``) or ``DEFAULT_COLUMNS``; by default with a "rate" column
    (the offered rate) when a configuration ran in open loop, where latency counts from each
    request's scheduled time and inf/s is the rate achieved. Columns are set apart by spaces,
    not lines, so that a sweep's table fits 100 columns; numbers never wrap."""
    results = list(results)
    rates = [offered_rate(r) for r in results]
    if columns is None:
        names = list(DEFAULT_COLUMNS)
        if any(rates):
            names.insert(names.index("workers") + 1, "rate")
    else:
        names = list(dict.fromkeys(columns))
        if not any(name in IDENTITY_COLUMNS for name in names):
            names.insert(0, "config")
    title = Text(single_line(title)) if title else None
    # As wide as its title (within the console), so that a few columns' title is not folded.
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True, show_lines=False,
                  min_width=title.cell_len if title else None)
    for name in names:
        text = name in ("status", "config", "device", "rate")
        table.add_column(COLUMNS[name], justify="left" if text else "right",
                         overflow="fold" if text else "ellipsis", no_wrap=name == "mean")
    for result, rate in zip(results, rates):
        table.add_row(*(_cell(name, result, rate) for name in names))
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
    mean and max, so that eight GPUs or sixteen NeuronCores still fit one line). A monitor that
    cannot be read at all (no nvidia-ml-py, no driver) is ``gpu n/a``: its reason is in the
    session and in ``latency-tui devices``, too long for the line."""
    parts = []
    for name, readings in groups:
        known = [r for r in readings if r.percent is not None]
        if not known:
            if any(r.note and r.note not in ("starting", "measuring") for r in readings):
                parts.append(f"{name} n/a")
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


def noise_notices(session: Any, path: Any = None) -> list:
    """Lines for after a run's table (its warnings list each noise reason): the host's noise
    notes, the noise verdict (a line per noisy configuration), the cost per million inferences
    where a price was given, and for a replay what differs from the original and, where
    ``latency-tui compare`` exists, the command that compares the two sessions."""
    host = session.host if isinstance(session.host, dict) else {}
    noise = host.get("noise") if isinstance(host.get("noise"), dict) else {}
    lines = [f"host: {single_line(note, 400)}" for note in noise.get("notes") or ()]
    verdicts = [(r, r.details.get("noise")) for r in session.results
                if isinstance(r.details, dict) and isinstance(r.details.get("noise"), dict)]
    noisy = [(r, v) for r, v in verdicts if v.get("verdict") == "noisy"]
    for result, verdict in noisy:
        count = len(verdict.get("reasons") or ())
        lines.append(f"noise: {result.config.label}: NOISY, {count} reason"
                     f"{'s' if count != 1 else ''} (the ! lines above); compare it with care")
    if verdicts and not noisy:
        lines.append("noise: quiet (other processes, intra-op threads, memory and throttling "
                     "checked)")
    for result in session.results:
        cost = result.details.get("cost_per_million_usd") if isinstance(result.details, dict) \
            else None
        if isinstance(cost, (int, float)) and result.throughput is not None:
            lines.append(f"cost: {result.config.label}: ${cost:,.4g} per million inferences at "
                         f"${result.details.get('price_per_hour_usd', 0):,.4g}/h "
                         f"({result.throughput.samples_per_s:,.1f} samples/s)")
    replay = host.get("replay_of") if isinstance(host.get("replay_of"), dict) else None
    if replay:
        original = single_line(replay.get("session", "?"), 400)
        changed = [single_line(d, 200) for d in replay.get("differences") or ()]
        lines.append(f"replay of {original}: " + ("differs from the original in: " + "; ".join(
            changed) if changed else "same versions, model file, commit and instance"))
        from importlib.util import find_spec

        if path is not None and find_spec("latency_tui.tui.compare") is not None:
            import shlex

            lines.append(f"compare: latency-tui compare {shlex.quote(str(replay.get('session')))}"
                         f" {shlex.quote(str(path))}")
    return lines
