"""pytest-benchmark's JSON as the baseline of ``latency-tui compare``.

pytest-benchmark writes one document per run (``pytest --benchmark-json=out.json``, or
``.benchmarks/<machine>/0001_name.json`` with ``--benchmark-save``/``--benchmark-autosave``)
with the top-level keys ``machine_info``, ``commit_info``, ``benchmarks``, ``datetime`` and
``version``. Each benchmark has a ``name``, a ``fullname``, the test's ``params`` and its
``stats`` in seconds: min, max, mean, stddev, median, q1, q3, iqr, rounds, iterations, ops,
total and, in ``--benchmark-json`` files and in saved ones written with
``--benchmark-save-data``, ``data``: every round's time divided by its ``iterations``.

Each benchmark that pairs with a configuration of the compared session becomes one result of a
baseline ``Session`` built in memory with that configuration, so that ``compare.compare_sessions``
tests it as it tests two sessions:

- with ``data`` and one call per round (``iterations`` 1) and a wall clock: the rounds are the
  samples, stored and summarised as a run's (a verdict is possible);
- otherwise the summary only: the median as p50 (no other percentile), mean and standard
  deviation, ops as throughput; shown, never judged (``details["no_samples"]`` says why).

Pairing (pytest-benchmark knows no batch size, copies or workers), in this order:

1. ``--pair NAME=N`` (``NAME`` a benchmark's name or fullname, ``N`` the 1-based number of a
   configuration in the compared session's table): only the pairs given;
2. one benchmark and a session of one configuration: paired, unless the benchmark's params name
   another batch size;
3. a benchmark whose ``params`` hold an integer ``batch_size`` (or ``batch``): the session's one
   closed-loop configuration of 1 copy x 1 worker at that batch size (pytest-benchmark calls
   the function one call at a time); two benchmarks claiming one configuration pair with none.

Nothing paired is a ``UserError`` naming the benchmarks and the configurations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .compare import NO_SAMPLES_REASON, Comparison, compare_sessions, config_key
from .errors import UserError
from .fields import Fields
from .measurement import ConfigResult, LatencySummary, Throughput
from .samplestore import store_sorted
from .session import PathLike, Session, read_json
from .specs import RunConfig
from .stats import summarize

FORMAT = "pytest-benchmark"
#: The top-level keys of pytest-benchmark's JSON; ``benchmarks`` and one other make one.
TOP_KEYS = ("machine_info", "commit_info", "benchmarks", "datetime", "version")
#: ``params`` keys that give a benchmark's batch size.
BATCH_PARAMS = ("batch_size", "batch")
#: Timers that count CPU time, not the wall-clock time a latency is.
CPU_TIMERS = ("process_time", "thread_time")
SHOWN_NAMES = 8


@dataclass(frozen=True, eq=False)
class Benchmark:
    """One entry of ``benchmarks``: its names, params and stats (seconds)."""

    name: str
    fullname: str
    params: Dict[str, Any]
    stats: Dict[str, float]
    rounds: int
    iterations: int = 1
    data_s: Optional[np.ndarray] = None
    timer: Optional[str] = None
    warmup: Optional[bool] = None

    @property
    def batch(self) -> Optional[int]:
        """The batch size its params name (``batch_size`` or ``batch``), if any."""
        for key in BATCH_PARAMS:
            value = self.params.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                return value
        return None

    def untested(self) -> Optional[str]:
        """Why its rounds are not latency samples; None when they are."""
        if self.data_s is None:
            return (f"pytest-benchmark {self.name}: no \"data\" in the file (saved without "
                    "--benchmark-save-data): only its summary is compared, untested")
        if self.iterations > 1:
            return (f"pytest-benchmark {self.name}: each round timed {self.iterations} calls "
                    "and kept their mean, which is not one call's latency: compared untested")
        if self.timer and any(cpu in self.timer for cpu in CPU_TIMERS):
            return (f"pytest-benchmark {self.name}: timed with {self.timer}, CPU time and not "
                    "latency: compared untested")
        return None


@dataclass(frozen=True)
class BenchmarkFile:
    """A pytest-benchmark document: its benchmarks, and where and when they ran."""

    path: str
    benchmarks: Tuple[Benchmark, ...]
    version: Optional[str] = None
    datetime: Optional[str] = None
    commit: Dict[str, Any] = field(default_factory=dict)


def is_pytest_benchmark(data: Any) -> bool:
    """pytest-benchmark's document: a ``benchmarks`` list beside at least one of its other
    top-level keys, and no latency-tui ``schema``."""
    return (isinstance(data, dict) and "schema" not in data
            and isinstance(data.get("benchmarks"), list)
            and any(key in data for key in TOP_KEYS if key != "benchmarks"))


def load_any(path: PathLike) -> Union[Session, BenchmarkFile]:
    """A latency-tui session, or a pytest-benchmark file; anything else a ``UserError``."""
    data = read_json(path)
    if is_pytest_benchmark(data):
        return parse_benchmark_file(data, str(Path(path).expanduser()))
    return Session.from_dict(data, where=str(Path(path).expanduser()))


def load_compared(path: PathLike) -> Session:
    """A session compared with the baseline (a pytest-benchmark file may only be the baseline)."""
    loaded = load_any(path)
    if isinstance(loaded, BenchmarkFile):
        raise UserError(f"{path}: a pytest-benchmark file may only be the baseline (the first "
                        "file); compare latency-tui sessions with it")
    return loaded


def parse_benchmark_file(data: Dict[str, Any], where: str) -> BenchmarkFile:
    f = Fields(data, where)
    benchmarks = tuple(parse_benchmark(entry) for entry in f.tables("benchmarks"))
    if not benchmarks:
        raise f.fail("benchmarks", "is empty: pytest-benchmark saved no benchmark")
    commit = data.get("commit_info")
    return BenchmarkFile(where, benchmarks, str(data.get("version") or "") or None,
                         str(data.get("datetime") or "") or None,
                         dict(commit) if isinstance(commit, dict) else {})


def parse_benchmark(f: Fields) -> Benchmark:
    name = f.string("name")
    stats = f.table("stats")
    values = {key: float(stats.number(key, minimum=0)) for key in ("min", "max", "mean",
                                                                  "median")}
    values["stddev"] = float(stats.number("stddev", 0.0, minimum=0))
    for key in ("q1", "q3", "iqr", "ops", "total"):
        if stats.has(key):
            values[key] = float(stats.number(key, minimum=0))
    data = None
    if stats.has("data"):
        data = np.asarray(stats.numbers("data", minimum=0), dtype=np.float64)
        if data.size == 0:
            data = None
    rounds = stats.number("rounds", None, integer=True, minimum=1)
    options = f.data.get("options") if isinstance(f.data.get("options"), dict) else {}
    timer, warmup = options.get("timer"), options.get("warmup")
    params = f.data.get("params")
    return Benchmark(
        name=name, fullname=f.string("fullname", name),
        params=dict(params) if isinstance(params, dict) else {},
        stats=values, rounds=rounds or (data.size if data is not None else 1),
        iterations=stats.number("iterations", 1, integer=True, minimum=1), data_s=data,
        timer=timer if isinstance(timer, str) else None,
        warmup=warmup if isinstance(warmup, bool) else None)


def parse_pairs(texts: Sequence[str]) -> Tuple[Tuple[str, int], ...]:
    """``--pair NAME=N`` (the last ``=`` splits: a name may hold one)."""
    out = []
    for text in texts:
        name, _, number = text.rpartition("=")
        if not name.strip() or not number.strip().isdigit() or int(number) < 1:
            raise UserError(f"--pair {text!r}: must be NAME=N, a benchmark's name (or fullname) "
                            "and a configuration's number in the session, from 1")
        out.append((name.strip(), int(number)))
    return tuple(out)


def baseline_result(bench: Benchmark, config: RunConfig) -> ConfigResult:
    """``bench`` as a finished result of ``config``: its rounds as samples when they are
    latencies, else its summary (the median as p50) without samples."""
    s = bench.stats
    why = bench.untested()
    details: Dict[str, Any] = {FORMAT: {"name": bench.name, "fullname": bench.fullname,
                                        "params": bench.params, "rounds": bench.rounds,
                                        "iterations": bench.iterations, "timer": bench.timer,
                                        "data": bench.data_s is not None}}
    stored = None
    if why is None:
        ordered = np.sort(np.rint(bench.data_s * 1e9).astype(np.int64))  # type: ignore[operator]
        latency = summarize(ordered, presorted=True)
        stored = store_sorted(ordered)
    else:
        details["no_samples"] = why
        latency = LatencySummary(count=bench.rounds, min=s["min"] * 1e3, mean=s["mean"] * 1e3,
                                 std=s["stddev"] * 1e3, max=s["max"] * 1e3,
                                 percentiles={"p50": s["median"] * 1e3})
    ops = s.get("ops") or (1.0 / s["mean"] if s["mean"] > 0 else None)
    return ConfigResult(
        config, "finished", samples=bench.rounds * bench.iterations,
        duration_s=s.get("total", s["mean"] * bench.rounds), latency=latency,
        throughput=Throughput(ops, ops * config.batch_size) if ops else None,
        details=details, latency_samples=stored)


@dataclass(frozen=True)
class Pairing:
    pairs: Tuple[Tuple[Benchmark, RunConfig], ...]
    unpaired: Tuple[str, ...]


def pair(file: BenchmarkFile, session: Session, explicit: Sequence[Tuple[str, int]] = (),
         where: str = "session") -> Pairing:
    """Which benchmark pairs with which configuration (the rules in the module's docstring)."""
    configs = list({config_key(r.config): r.config for r in session.results}.values())
    benches = file.benchmarks
    if explicit:
        chosen: Dict[Any, Tuple[Benchmark, RunConfig]] = {}
        for name, number in explicit:
            bench = find(file, name)
            if number > len(session.results):
                raise UserError(f"--pair {name}={number}: {where} has "
                                f"{len(session.results)} configurations")
            config = session.results[number - 1].config
            if config_key(config) in chosen or any(b is bench for b, _ in chosen.values()):
                raise UserError(f"--pair {name}={number}: a benchmark or configuration is "
                                "paired twice")
            chosen[config_key(config)] = (bench, config)
        used = [b for b, _ in chosen.values()]
        return Pairing(tuple(chosen.values()), tuple(
            f"{b.name} (not named by --pair)" for b in benches if not any(b is u for u in used)))
    if len(benches) == 1 and len(configs) == 1 and benches[0].batch in (None,
                                                                        configs[0].batch_size):
        return Pairing(((benches[0], configs[0]),), ())
    claims: Dict[Any, List[Benchmark]] = {}
    unpaired = []
    for bench in benches:
        batch = bench.batch
        if batch is None:
            unpaired.append(f"{bench.name} (its params name no batch_size or batch)")
            continue
        serial = [c for c in configs if c.batch_size == batch and c.copies == 1
                  and c.workers_per_copy == 1 and c.rate is None]
        if len(serial) != 1:
            unpaired.append(f"{bench.name} (batch {batch}: {len(serial)} closed-loop "
                            "1 x 1 configurations at that batch size)")
            continue
        claims.setdefault(config_key(serial[0]), []).append(bench)
    pairs = []
    for key, claimants in claims.items():
        config = next(c for c in configs if config_key(c) == key)
        if len(claimants) == 1:
            pairs.append((claimants[0], config))
        else:
            unpaired.extend(f"{b.name} (batch {b.batch}: claimed by {len(claimants)} "
                            "benchmarks)" for b in claimants)
    return Pairing(tuple(pairs), tuple(unpaired))


def find(file: BenchmarkFile, name: str) -> Benchmark:
    found = [b for b in file.benchmarks if name in (b.name, b.fullname)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"--pair {name}: no such benchmark in {file.path} (it has "
                        f"{shown(b.name for b in file.benchmarks)})")
    raise UserError(f"--pair {name}: {len(found)} benchmarks have that name; give the fullname "
                    f"({shown(b.fullname for b in found)})")


def shown(names: Any) -> str:
    names = list(names)
    more = len(names) - SHOWN_NAMES
    return ", ".join(names[:SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


def pairing_notes(bench: Benchmark, config: RunConfig) -> Tuple[str, ...]:
    notes = []
    if config.copies * config.workers_per_copy > 1 or config.rate is not None:
        notes.append(f"pytest-benchmark {bench.name} called one at a time; this configuration "
                     + ("is open-loop (its latency includes queueing)" if config.rate is not None
                        else f"runs {config.copies} x {config.workers_per_copy} at once"))
    if bench.untested() is None and bench.warmup is False:
        notes.append(f"pytest-benchmark {bench.name} ran without warm-up (options.warmup): "
                     "its first, cold rounds are among the samples")
    return tuple(notes)


def compare_baseline(baseline: Union[Session, BenchmarkFile], other: Session, *,
                     baseline_name: str, other_name: str,
                     pairs: Sequence[Tuple[str, int]] = (), **options: Any) -> Comparison:
    """``other`` against the baseline, a session or a pytest-benchmark file; a ``UserError``
    when no configuration pairs."""
    if not isinstance(baseline, BenchmarkFile):
        if pairs:
            raise UserError("--pair: only with a pytest-benchmark baseline (sessions are "
                            "matched by their configurations)")
        comparison = compare_sessions(baseline, other, baseline_name=baseline_name,
                                      other_name=other_name, **options)
        if not comparison.pairs:
            raise UserError(f"{other_name}: no configuration matches one of the baseline "
                            f"{baseline_name} (matched by device, batch size, copies, workers, "
                            "copy mode and rate)")
        return comparison
    pairing = pair(baseline, other, pairs, other_name)
    if not pairing.pairs:
        configs = "; ".join(f"{i} {r.config.label}" for i, r in enumerate(other.results, 1))
        raise UserError(
            f"{other_name}: no configuration pairs with a benchmark of the pytest-benchmark file "
            f"{baseline_name}: {shown(pairing.unpaired)}; its configurations: "
            f"{configs or 'none'}; pair them with --pair NAME=N")
    imported = Session(results=[baseline_result(b, c) for b, c in pairing.pairs])
    comparison = compare_sessions(imported, other, baseline_name=f"{baseline_name} ({FORMAT})",
                                  other_name=other_name, **options)
    notes = {config_key(c): pairing_notes(b, c) for b, c in pairing.pairs}
    pairs_out = []
    for p in comparison.pairs:
        why = p.baseline.details.get("no_samples")
        reasons = p.reasons
        if why:  # the generic reason stays when the session has no samples either
            reasons = tuple(r for r in reasons if r != NO_SAMPLES_REASON
                            or p.other.latency_samples is None) + (why,)
        pairs_out.append(replace(p, reasons=reasons + notes.get(config_key(p.config), ())))
    return replace(comparison, pairs=tuple(pairs_out), only_in_baseline=pairing.unpaired)
