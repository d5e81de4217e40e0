"""Comparing sessions: which configurations got slower or faster, by how much, and whether that
is more than the noise of sampling. Pure functions of loaded sessions (numpy, no Textual).

Configurations are matched by their config (device, batch size, copies, workers per copy, copy
mode, offered rate), never by their order. For each matched pair:

- **latency percentiles** (p50 and p99, and any other a bound names) are tested on the stored
  samples (``samplestore``) with a percentile bootstrap of the relative difference
  ``other / baseline - 1``: both sessions are resampled independently ``RESAMPLES`` times from a
  seeded generator, and the interval is the central quantiles of the resampled differences.
  A resample's percentile is drawn directly from its exact distribution (the ``k``-th smallest
  of ``n`` uniform draws is Beta(k, n + 1 - k); a draw's rank in the sorted samples is that
  times ``n``), which is the ordinary bootstrap at O(1) per resample instead of O(n).
  The percentiles tested share ``ALPHA`` (Bonferroni: each interval at ``1 - ALPHA / m``), so
  that identical distributions are called changed at most ``ALPHA`` of the time; intervals from
  a histogram store are widened by its relative error. A percentile with fewer than
  ``MIN_SAMPLES_ABOVE`` samples above it is not tested.
- **throughput** (samples per second) is tested on the timeline's per-second values (the first
  and last seconds left out, as for ``throughput_avg``) with Welch's t interval of the log ratio
  of the means, at ``1 - ALPHA``; it needs ``MIN_SECONDS`` such seconds on both sides. Seconds are
  treated as independent, which is optimistic when throughput drifts within a run.

The verdict of a pair comes from its latency percentiles: "slower" when one is significantly
higher, "faster" when one is significantly lower and none higher, else "no significant change";
"noisy: not judged" when either side's ``details["noise"]`` says noisy (unless noise is allowed),
"no samples stored" for sessions from before samples were stored, "not comparable" when either
side did not finish. A pytest-benchmark baseline is converted to results first (``pbimport``).
A bound (``--fail-on p99:+5%``) is breached by a judged pair whose point
estimate is beyond the bound **and** whose change is significant in that direction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import UserError
from .measurement import PERCENTILE_KEYS, PERCENTILES, ConfigResult
from .session import Session
from .specs import RunConfig
from .stats import MIN_SAMPLES_ABOVE

ALPHA = 0.05
RESAMPLES = 10_000
JUDGED = ("p50", "p99")
MIN_SECONDS = 5
METRICS = PERCENTILE_KEYS + ("throughput",)
SLOWER, FASTER, SAME = "slower", "faster", "no significant change"
NOISY, NO_SAMPLES, NOT_COMPARABLE = "noisy: not judged", "no samples stored", "not comparable"
NO_SAMPLES_REASON = "a session without stored samples: the summaries are compared, untested"
#: A difference's ``change``: significantly higher, lower, neither, or not tested.
HIGHER, LOWER, UNCHANGED, UNTESTED = "higher", "lower", "unchanged", "untested"
_QUANTILE = dict(PERCENTILES)
_BOUND = re.compile(r"^\s*([A-Za-z0-9.]+)\s*:\s*([+-]?)\s*([0-9]+(?:\.[0-9]*)?)\s*%\s*$")


@dataclass(frozen=True)
class Bound:
    """A ``--fail-on`` bound: ``metric`` may not get worse by more than ``limit_pct`` percent
    (signed: positive for a latency, which must not rise, negative for throughput)."""

    metric: str
    limit_pct: float
    text: str

    def breached_by(self, diff: "Difference") -> bool:
        if diff.relative is None or diff.change == UNTESTED:
            return False
        if self.metric == "throughput":
            return diff.change == LOWER and 100 * diff.relative < self.limit_pct
        return diff.change == HIGHER and 100 * diff.relative > self.limit_pct


def parse_bound(text: str) -> Bound:
    """``p99:+5%`` or ``throughput:-3%`` (the sign may be left out); a ``UserError`` naming the
    bound otherwise."""
    where = f"--fail-on {text!r}"
    found = _BOUND.match(text)
    if not found:
        raise UserError(f"{where}: must be METRIC:+PCT% or throughput:-PCT% (such as p99:+5% "
                        "or throughput:-3%)")
    metric, sign, number = found.group(1).lower(), found.group(2), float(found.group(3))
    if metric not in METRICS:
        raise UserError(f"{where}: unknown metric {metric!r} (one of {', '.join(METRICS)})")
    if metric == "throughput":
        if sign == "+":
            raise UserError(f"{where}: a throughput bound is a drop: write throughput:-{number:g}%")
        if number >= 100:
            raise UserError(f"{where}: a drop must be below 100 %")
        return Bound(metric, -number, text)
    if sign == "-":
        raise UserError(f"{where}: a latency bound is a rise: write {metric}:+{number:g}%")
    return Bound(metric, number, text)


def parse_bounds(texts: Iterable[str]) -> Tuple[Bound, ...]:
    return tuple(parse_bound(text) for text in texts)


def judged_percentiles(bounds: Sequence[Bound] = ()) -> Tuple[str, ...]:
    """p50, p99 and every other percentile a bound names, in ``PERCENTILE_KEYS`` order."""
    named = set(JUDGED) | {b.metric for b in bounds if b.metric != "throughput"}
    return tuple(key for key in PERCENTILE_KEYS if key in named)


@dataclass(frozen=True)
class Difference:
    """One metric of a pair: both values, ``other / baseline - 1`` and its interval."""

    metric: str
    baseline: Optional[float]
    other: Optional[float]
    relative: Optional[float]
    interval: Optional[Tuple[float, float]] = None
    confidence: Optional[float] = None
    change: str = UNTESTED
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"metric": self.metric, "baseline": self.baseline, "other": self.other,
                "relative": self.relative,
                "interval": list(self.interval) if self.interval else None,
                "confidence": self.confidence, "change": self.change, "note": self.note}


@dataclass(frozen=True)
class Pair:
    """A configuration found in both sessions, and what changed."""

    config: RunConfig
    baseline: ConfigResult
    other: ConfigResult
    differences: Tuple[Difference, ...]
    verdict: str
    reasons: Tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        return self.verdict in (SLOWER, FASTER, SAME)

    def difference(self, metric: str) -> Optional[Difference]:
        return next((d for d in self.differences if d.metric == metric), None)

    def to_dict(self) -> Dict[str, Any]:
        out = {"config": config_text(self.config), "verdict": self.verdict,
               "reasons": list(self.reasons),
               "differences": {d.metric: d.to_dict() for d in self.differences}}
        imported = self.baseline.details.get("pytest-benchmark")
        if isinstance(imported, dict):  # a pytest-benchmark baseline (``pbimport``)
            out["baseline_benchmark"] = imported.get("fullname")
        return out


@dataclass(frozen=True)
class Comparison:
    """A session against the baseline: the matched pairs and what only one of them has."""

    baseline: str
    other: str
    pairs: Tuple[Pair, ...]
    only_in_baseline: Tuple[str, ...] = ()
    only_in_other: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {"baseline": self.baseline, "session": self.other,
                "pairs": [p.to_dict() for p in self.pairs],
                "only_in_baseline": list(self.only_in_baseline),
                "only_in_session": list(self.only_in_other)}


@dataclass(frozen=True)
class Breach:
    comparison: Comparison
    pair: Pair
    bound: Bound
    difference: Difference

    def text(self) -> str:
        d = self.difference
        return (f"{self.bound.metric} {100 * (d.relative or 0):+.2f}% beyond "
                f"{self.bound.limit_pct:+g}% ({config_text(self.pair.config)}, "
                f"{self.comparison.other} against {self.comparison.baseline})")


def config_key(config: RunConfig) -> Tuple[Any, ...]:
    return (config.device, config.batch_size, config.copies, config.workers_per_copy,
            config.copy_mode, config.rate)


def config_text(config: RunConfig) -> str:
    return f"{config.device} {config.label}, {config.copy_mode}"


def noise_of(result: ConfigResult) -> Optional[Tuple[str, ...]]:
    """The reasons a result was measured on a noisy host (``details["noise"]``), None when it
    was not judged noisy."""
    noise = result.details.get("noise") if isinstance(result.details, dict) else None
    if not isinstance(noise, dict) or noise.get("verdict") != "noisy":
        return None
    reasons = noise.get("reasons")
    return tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()


def compare_sessions(baseline: Session, other: Session, *, baseline_name: str = "baseline",
                     other_name: str = "session", percentiles: Sequence[str] = JUDGED,
                     allow_noisy: bool = False, alpha: float = ALPHA,
                     resamples: int = RESAMPLES, seed: int = 0) -> Comparison:
    """Every configuration of ``other`` that ``baseline`` has too, compared (the last result of
    a configuration measured more than once)."""
    mine = {config_key(r.config): r for r in baseline.results}
    theirs = {config_key(r.config): r for r in other.results}
    pairs = [compare_results(result, theirs[key], percentiles=percentiles,
                             allow_noisy=allow_noisy, alpha=alpha, resamples=resamples,
                             seed=(seed, i))
             for i, (key, result) in enumerate(mine.items()) if key in theirs]
    return Comparison(baseline_name, other_name, tuple(pairs),
                      tuple(config_text(r.config) for k, r in mine.items() if k not in theirs),
                      tuple(config_text(r.config) for k, r in theirs.items() if k not in mine))


def compare_results(a: ConfigResult, b: ConfigResult, *, percentiles: Sequence[str] = JUDGED,
                    allow_noisy: bool = False, alpha: float = ALPHA,
                    resamples: int = RESAMPLES, seed: Any = 0) -> Pair:
    """The baseline's result ``a`` against ``b`` (same config): differences and the verdict."""
    for side, result in (("baseline", a), ("session", b)):
        if result.status != "finished" or result.latency is None:
            reason = f"{result.status} in the {side}" if result.status != "finished" \
                else f"no latency in the {side}"
            return Pair(a.config, a, b, (), NOT_COMPARABLE, (reason,))
    rng = np.random.default_rng(list(_flatten(seed)))
    stored = a.latency_samples is not None and b.latency_samples is not None
    confidence = 1.0 - alpha / max(len(percentiles), 1)
    diffs = [percentile_difference(a, b, key, confidence, resamples, rng, stored)
             for key in percentiles]
    diffs.append(throughput_difference(a, b, 1.0 - alpha))
    reasons: List[str] = []
    for side, result in (("baseline", a), ("session", b)):
        noisy = noise_of(result)
        if noisy is not None:
            reasons.append(f"noisy in the {side}" + (f": {'; '.join(noisy)}" if noisy else ""))
    latency = [d for d in diffs if d.metric != "throughput"]
    if reasons and not allow_noisy:
        verdict = NOISY
    elif not stored:
        verdict, reasons = NO_SAMPLES, reasons + [NO_SAMPLES_REASON]
    elif all(d.change == UNTESTED for d in latency):
        verdict = NOT_COMPARABLE
        reasons.append("too few samples to test " + ", ".join(percentiles))
    elif any(d.change == HIGHER for d in latency):
        verdict = SLOWER
    elif any(d.change == LOWER for d in latency):
        verdict = FASTER
    else:
        verdict = SAME
    return Pair(a.config, a, b, tuple(diffs), verdict, tuple(reasons))


def _flatten(seed: Any) -> Iterable[int]:
    if isinstance(seed, (tuple, list)):
        for part in seed:
            yield from _flatten(part)
    else:
        yield int(seed)


def relative(baseline: Optional[float], other: Optional[float]) -> Optional[float]:
    if baseline is None or other is None or baseline <= 0:
        return None
    return other / baseline - 1.0


def percentile_difference(a: ConfigResult, b: ConfigResult, key: str, confidence: float,
                          resamples: int, rng: np.random.Generator, stored: bool = True
                          ) -> Difference:
    """One latency percentile (ms) of both results, tested on their stored samples."""
    # an imported summary (``pbimport``) may lack a percentile: shown as missing, untested
    base, other = a.latency.percentiles.get(key), b.latency.percentiles.get(key)  # type: ignore
    diff = Difference(key, base, other, relative(base, other))
    if not stored:
        return diff
    q = _QUANTILE[key]
    stores = (a.latency_samples, b.latency_samples)
    if min(s.count * (1.0 - q) for s in stores) < MIN_SAMPLES_ABOVE:  # type: ignore[union-attr]
        return Difference(key, base, other, diff.relative, note="too few samples above it")
    draws = [bootstrap_percentile(s.buckets(), q, resamples, rng)  # type: ignore[union-attr]
             for s in stores]
    if not (draws[0] > 0).all():
        return Difference(key, base, other, diff.relative, note="a latency of 0")
    ratios = draws[1] / draws[0] - 1.0
    tail = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(ratios, [tail, 1.0 - tail]))
    error = max(s.relative_error for s in stores)  # type: ignore[union-attr]
    if error:  # histogram stores: each percentile is within ``error`` of the exact one
        widen = (1.0 + error) / (1.0 - error)
        low, high = (1.0 + low) / widen - 1.0, (1.0 + high) * widen - 1.0
    change = HIGHER if low > 0 else LOWER if high < 0 else UNCHANGED
    return Difference(key, base, other, diff.relative, (low, high), confidence, change)


def bootstrap_percentile(table: Tuple[np.ndarray, np.ndarray], q: float, resamples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``resamples`` bootstrap replicates of the ``q``-quantile of samples given as ``(values,
    counts)`` (``StoredSamples.buckets``), each the "linear" percentile of ``n`` draws with
    replacement, drawn from its exact law: the ``k``-th smallest of ``n`` uniforms is
    Beta(k, n + 1 - k), and the next one lies above it by the smallest of ``n - k`` uniforms
    on what is left."""
    values, counts = table
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    position = (n - 1) * q
    below = int(math.floor(position))
    fraction = position - below

    def at(u: np.ndarray) -> np.ndarray:
        ranks = np.minimum((u * n).astype(np.int64), n - 1)
        return values[np.minimum(np.searchsorted(cumulative, ranks, side="right"),
                                 values.size - 1)]

    u = rng.beta(below + 1, n - below, size=resamples)
    low = at(u)
    if fraction == 0 or below + 1 >= n:
        return low
    gap = -np.expm1(np.log1p(-rng.random(resamples)) / (n - below - 1))
    return low + (at(u + (1.0 - u) * gap) - low) * fraction


def per_second(result: ConfigResult) -> Optional[np.ndarray]:
    """Samples per second in each full second of the timeline (first and last left out)."""
    timeline = result.timeline
    if timeline is None or len(timeline) < MIN_SECONDS + 2:
        return None
    counts = np.asarray(timeline.inferences[1:-1], dtype=np.float64)
    return counts * result.config.batch_size / timeline.bucket_s


def throughput_difference(a: ConfigResult, b: ConfigResult, confidence: float) -> Difference:
    """Samples per second (the per-second average when there is a timeline), tested with
    Welch's t interval of the log ratio of the per-second means."""
    def point(result: ConfigResult) -> Optional[float]:
        t = result.throughput
        if t is None:
            return None
        return t.avg_samples_per_s if t.avg_samples_per_s is not None else t.samples_per_s

    base, other = point(a), point(b)
    diff = Difference("throughput", base, other, relative(base, other))
    xs, ys = per_second(a), per_second(b)
    if xs is None or ys is None:
        note = "no per-second timeline" if a.timeline is None or b.timeline is None else \
            f"fewer than {MIN_SECONDS} full seconds in a timeline"
        return Difference("throughput", base, other, diff.relative, note=note)
    mx, my = float(xs.mean()), float(ys.mean())
    if mx <= 0 or my <= 0:
        return Difference("throughput", base, other, diff.relative, note="a second with none")
    vx, vy = xs.var(ddof=1) / xs.size / mx ** 2, ys.var(ddof=1) / ys.size / my ** 2
    se = math.sqrt(vx + vy)
    if se > 0:
        df = (vx + vy) ** 2 / (vx ** 2 / (xs.size - 1) + vy ** 2 / (ys.size - 1))
        half = t_quantile(1.0 - (1.0 - confidence) / 2.0, df) * se
    else:
        half = 0.0
    centre = math.log(my / mx)
    low, high = math.expm1(centre - half), math.expm1(centre + half)
    change = HIGHER if low > 0 else LOWER if high < 0 else UNCHANGED
    return Difference("throughput", base, other, diff.relative, (low, high), confidence, change)


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile by the Cornish-Fisher expansion (within 0.3 % for df >= 4)."""
    z = NormalDist().inv_cdf(p)
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def breaches(comparisons: Iterable[Comparison], bounds: Sequence[Bound]) -> List[Breach]:
    """Every bound a judged pair breaches (a noisy pair is not judged unless noise is allowed,
    which ``compare_sessions`` already decided)."""
    out = []
    for comparison in comparisons:
        for pair in comparison.pairs:
            if not pair.judged:
                continue
            for bound in bounds:
                diff = pair.difference(bound.metric)
                if diff is not None and bound.breached_by(diff):
                    out.append(Breach(comparison, pair, bound, diff))
    return out


def unchecked_bounds(comparisons: Iterable[Comparison], bounds: Sequence[Bound]) -> List[str]:
    """Why a bound could not be checked on a pair (no samples, noisy, too few seconds)."""
    out = []
    for comparison in comparisons:
        for pair in comparison.pairs:
            for bound in bounds:
                diff = pair.difference(bound.metric)
                if not pair.judged or diff is None or diff.change == UNTESTED:
                    why = pair.verdict if not pair.judged else (diff.note if diff else "")
                    out.append(f"--fail-on {bound.text}: not checked on "
                               f"{config_text(pair.config)} of {comparison.other} ({why})")
    return out
