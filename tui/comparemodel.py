"""What the compare screen shows, without Textual: the marked sessions loaded, each compared with
the first (the baseline) by ``core.compare`` (configurations matched by config, p50 and p99
tested on the stored samples, a verdict per pair), folded into one row per configuration of the
baseline that another session has too, and the overlaid histogram of a row: every session's
stored samples binned on one shared axis (``tui.bins``' rules over all of them together), as the
share of that session's samples per bin, so that sessions of different lengths compare.

Sessions are named by letter in the table (A is the baseline) and by file in the legends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from latency_tui.core.api import (
    Comparison, ConfigResult, Pair, Session, compare_sessions, config_text, load_session,
)
from latency_tui.core.errors import UserError, single_line

from .bins import choose_log, nice_range, target_range
from .format import fmt_ms, fmt_rate

#: The sessions' colours, in order (plotext and Rich know these names alike).
COLOURS = ("cyan", "magenta", "yellow", "green", "red", "blue")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: At most this many sessions side by side (a letter and a colour each).
MAX_SESSIONS = len(COLOURS)
#: A change that is significant gets this mark after it, so that it reads without colour.
SIGNIFICANT = "*"


@dataclass(frozen=True)
class Named:
    """A loaded session, its letter in the table and its colour in the histogram."""

    path: Path
    session: Session
    letter: str
    colour: str

    @property
    def name(self) -> str:
        return single_line(self.path.name, 60)


def load_marked(paths: Sequence[Path]) -> Tuple[List[Named], Optional[str]]:
    """The sessions in ``paths``, in order, or a problem in words (fewer than two, too many,
    a file that cannot be read: named)."""
    if len(paths) < 2:
        return [], (f"mark two or more sessions to compare ({len(paths)} marked): space marks "
                    "the highlighted one, the first marked is the baseline")
    if len(paths) > MAX_SESSIONS:
        return [], f"at most {MAX_SESSIONS} sessions side by side ({len(paths)} marked)"
    out = []
    for i, path in enumerate(paths):
        try:
            session = load_session(path)
        except (UserError, OSError) as exc:
            return [], f"cannot compare: {single_line(path)} is not a readable session: {exc}"
        out.append(Named(Path(path), session, LETTERS[i], COLOURS[i]))
    return out, None


def compare_all(sessions: Sequence[Named]) -> List[Comparison]:
    """Each session after the first against the first (seeded: the same files, the same
    verdicts)."""
    base = sessions[0]
    return [compare_sessions(base.session, other.session, baseline_name=base.name,
                             other_name=other.name) for other in sessions[1:]]


@dataclass(frozen=True)
class Row:
    """A configuration of the baseline and, for each other session, its pair (None where that
    session does not have it)."""

    config: Any
    baseline: ConfigResult
    pairs: Tuple[Optional[Pair], ...]

    @property
    def title(self) -> str:
        return single_line(config_text(self.config))

    def results(self) -> List[Optional[ConfigResult]]:
        """The row's result in every session, the baseline first (None where absent)."""
        return [self.baseline] + [p.other if p is not None else None for p in self.pairs]


def build_rows(comparisons: Sequence[Comparison]) -> List[Row]:
    """One row per configuration of the baseline matched in at least one other session, in the
    baseline's order (a pair's baseline result is the baseline session's own object)."""
    order: List[ConfigResult] = []
    found: dict = {}
    for i, comparison in enumerate(comparisons):
        for pair in comparison.pairs:
            if id(pair.baseline) not in found:
                order.append(pair.baseline)
                found[id(pair.baseline)] = [None] * len(comparisons)
            found[id(pair.baseline)][i] = pair
    return [Row(result.config, result, tuple(found[id(result)])) for result in order]


def unmatched(sessions: Sequence[Named], comparisons: Sequence[Comparison]) -> List[str]:
    """"only in A (base.json): ..." lines: what no other session shares with the baseline, and
    what each other session has that the baseline does not."""
    lines = []
    if comparisons:
        alone = set(comparisons[0].only_in_baseline)
        for comparison in comparisons[1:]:
            alone &= set(comparison.only_in_baseline)
        names = [n for n in comparisons[0].only_in_baseline if n in alone]
        if names:
            lines.append(f"only in {sessions[0].letter} ({sessions[0].name}): "
                         + "; ".join(single_line(n) for n in names))
    for named, comparison in zip(sessions[1:], comparisons):
        if comparison.only_in_other:
            lines.append(f"only in {named.letter} ({named.name}): "
                         + "; ".join(single_line(n) for n in comparison.only_in_other))
    return lines


def short_config(config: Any) -> str:
    """"cpu b8 2x2" (device, batch, copies x workers; the copy mode when not threads; the
    open-loop rate): the table's first column."""
    text = f"{config.device} b{config.batch_size} {config.copies}x{config.workers_per_copy}"
    if config.copy_mode != "thread":
        text += f" {config.copy_mode}"
    if config.rate is not None:
        text += f" {config.rate:g}/s"
    return single_line(text, 40)


def change(diff: Any, rise_is_worse: bool = True) -> Tuple[str, str]:
    """(``+5.2%`` with ``*`` when significant, its style): red when significantly worse,
    green when better, dim when not tested."""
    if diff is None or diff.relative is None:
        return "-", "dim"
    text = f"{100 * diff.relative:+.1f}%"
    if diff.change == "untested":
        return text, "dim"
    if diff.change == "unchanged":
        return text, ""
    worse = diff.change == ("higher" if rise_is_worse else "lower")
    return text + SIGNIFICANT, "bold red" if worse else "green"


def verdict_style(verdict: str) -> str:
    return {"slower": "bold red", "faster": "green", "no significant change": ""}.get(
        verdict, "yellow")


def figure(result: Optional[ConfigResult], metric: str) -> str:
    """p50 or p99 (ms) or throughput (samples/s) of a result, "-" when it has none."""
    if result is None:
        return "-"
    if metric == "throughput":
        t = result.throughput
        if t is None:
            return "-"
        return fmt_rate(t.avg_samples_per_s if t.avg_samples_per_s is not None
                        else t.samples_per_s)
    if result.latency is None:
        return "-"
    return fmt_ms(result.latency.percentiles.get(metric))


def detail(pair: Pair, letter: str) -> str:
    """The pair's figures in full: values, change and interval, and why it was not judged."""
    parts = []
    for metric, name, unit in (("p50", "p50", " ms"), ("p99", "p99", " ms"),
                               ("throughput", "samples/s", "")):
        diff = pair.difference(metric)
        if diff is None:
            continue
        values = f"{figure(pair.baseline, metric)} -> {figure(pair.other, metric)}{unit}"
        text, _ = change(diff, metric != "throughput")
        if diff.interval is not None:
            low, high = diff.interval
            text += f" [{100 * low:+.1f}, {100 * high:+.1f}]"
        elif diff.note:
            text += f" ({single_line(diff.note, 80)})"
        parts.append(f"{name} {values} {text}")
    line = f"{letter}: {pair.verdict}" + (f" · {' · '.join(parts)}" if parts else "")
    for reason in pair.reasons:
        line += f" · {single_line(reason, 300)}"
    return line


# -- the overlaid histogram ---------------------------------------------------------------------
class Samples(NamedTuple):
    """One session's stored samples (ms): distinct values ascending and how many of each."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        cumulative = np.cumsum(self.counts)
        rank = int(round(q * (int(cumulative[-1]) - 1)))
        at = int(np.searchsorted(cumulative, rank, side="right"))
        return float(self.values[min(at, self.values.size - 1)])


def samples_of(result: Optional[ConfigResult]) -> Optional[Samples]:
    """A result's stored samples in ms, None when it has none (an older session, a failure)."""
    stored = result.latency_samples if result is not None else None
    if stored is None:
        return None
    if stored.exact:
        values = stored.sorted_ns() / 1e6
        return Samples(values, np.ones(values.size, dtype=np.int64))
    values, counts = stored.buckets()
    return Samples(np.asarray(values, dtype=np.float64) / 1e6, np.asarray(counts, np.int64))


class Overlay(NamedTuple):
    edges: np.ndarray  # ms
    #: Each session's share of its samples per bin (None: no samples to draw).
    shares: List[Optional[np.ndarray]]
    #: Each session's samples beyond the last edge and under the first (0 where it has none).
    above: List[int]
    below: List[int]
    log: bool

    @property
    def low(self) -> float:
        return float(self.edges[0])

    @property
    def high(self) -> float:
        return float(self.edges[-1])


def overlay(samples: Sequence[Optional[Samples]], bins: int) -> Optional[Overlay]:
    """Every session's samples on the same bins: the range from the lowest 0.1th percentile to
    a little past the highest p99 (``tui.bins``), log-spaced for a long tail; None when no
    session has samples."""
    present = [s for s in samples if s is not None and s.total > 0]
    if not present:
        return None
    low = min(s.quantile(0.001) for s in present)
    p50 = min(s.quantile(0.5) for s in present)
    p99 = max(s.quantile(0.99) for s in present)
    p999 = max(s.quantile(0.999) for s in present)
    log = choose_log(p50, p99, low)
    first, last = nice_range(*target_range(low, p99, p999), log)
    edges = np.geomspace(first, last, bins + 1) if log else np.linspace(first, last, bins + 1)
    shares: List[Optional[np.ndarray]] = []
    above: List[int] = []
    below: List[int] = []
    for s in samples:
        if s is None or s.total == 0:
            shares.append(None)
            above.append(0)
            below.append(0)
            continue
        counts, _ = np.histogram(s.values, edges, weights=s.counts)
        shares.append(counts / s.total)
        above.append(int(s.counts[s.values > edges[-1]].sum()))
        below.append(int(s.counts[s.values < edges[0]].sum()))
    return Overlay(edges, shares, above, below, log)


def no_samples_reason(result: Optional[ConfigResult]) -> str:
    if result is None:
        return "does not have this configuration"
    if result.status != "finished":
        return f"{single_line(result.status, 40)}: no samples"
    return "no samples stored (a session from before samples were kept)"
