"""What a plan asks to search for, as a frozen, picklable spec: the preset's ``[search]`` table
or the command line's ``--search`` flags. The plan carries it to wherever the engine runs (a
thread, a child process under the TUI, a Ray task), and the engine turns it into a strategy
there (``strategy_for``): a search is built from its plan, never handed across processes.

- ``batch``: the throughput-optimal batch and the largest that fits, from the plan's first
  batch size up to ``max_batch``, on the plan's first copies x workers.
- ``throughput``: the fewest copies, then workers per copy, that reach the throughput plateau at
  the plan's first batch size, up to ``max_copies`` (default: the larger of the plan's copies and
  the usable CPUs; a device's cores for Neuron) and ``max_workers``.
- ``slo``: the most samples/s with p99 (and p50, and ``max_memory_mb`` of peak device memory
  where the backend reports it) within bounds over the plan's batch sizes (doubling from 1 to
  128 when it names one), copies and workers.
- ``rate``: the highest open-loop rate of the plan's first configuration whose p99 meets the
  bound (MLPerf's Server scenario), by bisection from the closed-loop capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .errors import UserError

SEARCH_KINDS = ("batch", "throughput", "slo", "rate")
BOUNDED = ("slo", "rate")
DEFAULT_MIN_GAIN = {"batch": 0.03, "throughput": 0.05, "slo": 0.0, "rate": 0.0}
MAX_BATCH = 2 ** 20
FIELDS = ("kind", "p99_ms", "p50_ms", "max_batch", "min_gain", "max_copies", "max_workers",
          "max_memory_mb")


@dataclass(frozen=True)
class SearchSpec:
    kind: str
    p99_ms: Optional[float] = None
    p50_ms: Optional[float] = None
    max_batch: int = 4096
    min_gain: Optional[float] = None
    max_copies: Optional[int] = None
    max_workers: Optional[int] = None
    #: The slo search's bound on peak device memory (MB, 1e6 bytes).
    max_memory_mb: Optional[float] = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in FIELDS if getattr(self, k) is not None}


def check_search(spec: SearchSpec, what: Mapping[str, str]) -> SearchSpec:
    """``spec`` if it makes sense, else a ``UserError`` naming the field as the user wrote it
    (``what`` maps a field to its flag or preset path)."""
    def fail(field: str, message: str) -> UserError:
        return UserError(f"{what.get(field, field)}: {message}")

    if spec.kind not in SEARCH_KINDS:
        raise fail("kind", f"{spec.kind!r} is not one of {', '.join(SEARCH_KINDS)}")
    for field in ("p99_ms", "p50_ms"):
        value = getattr(spec, field)
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1e7):
            raise fail(field, f"must be milliseconds above 0, not {value!r}")
    if spec.kind in BOUNDED and spec.p99_ms is None:
        raise fail("p99_ms", f"the {spec.kind} search needs a p99 bound, e.g. 20 (milliseconds)")
    if spec.kind == "rate" and spec.p50_ms is not None:
        raise fail("p50_ms", "the rate search takes a p99 bound only")
    if spec.kind not in BOUNDED and (spec.p99_ms is not None or spec.p50_ms is not None):
        field = "p99_ms" if spec.p99_ms is not None else "p50_ms"
        raise fail(field, f"latency bounds belong to the slo and rate searches, not {spec.kind}")
    memory = spec.max_memory_mb
    if memory is not None:
        if isinstance(memory, bool) or not (isinstance(memory, (int, float)) and 0 < memory < 1e9):
            raise fail("max_memory_mb", f"must be megabytes above 0, not {memory!r}")
        if spec.kind != "slo":
            raise fail("max_memory_mb", f"the memory bound belongs to the slo search, not "
                                        f"{spec.kind}")
    if not (isinstance(spec.max_batch, int) and 1 <= spec.max_batch <= MAX_BATCH):
        raise fail("max_batch", f"must be a whole number from 1 to {MAX_BATCH}, "
                                f"not {spec.max_batch!r}")
    if spec.min_gain is not None and not (isinstance(spec.min_gain, (int, float))
                                          and 0 <= spec.min_gain < 1):
        raise fail("min_gain", f"must be a fraction from 0 to below 1 (0.05 is 5 %), not "
                               f"{spec.min_gain!r}")
    for field in ("max_copies", "max_workers"):
        value = getattr(spec, field)
        if value is not None and not (isinstance(value, int) and 1 <= value <= 4096):
            raise fail(field, f"must be a whole number from 1 to 4096, not {value!r}")
    return spec


def search_from_table(table: Any, where: str) -> SearchSpec:
    """The preset's ``[search]`` table, every field checked."""
    if not isinstance(table, dict):
        raise UserError(f"{where}: [search] must be a table")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: search.{unknown[0]} is not a known field (known: "
                        f"{', '.join(FIELDS)})")
    if "kind" not in table:
        raise UserError(f"{where}: search.kind is required ({', '.join(SEARCH_KINDS)})")
    values = {}
    for field in FIELDS:
        value = table.get(field)
        if isinstance(value, bool):
            raise UserError(f"{where}: search.{field} must not be true or false")
        if field in ("max_batch", "max_copies", "max_workers") and isinstance(value, float) \
                and value.is_integer():
            value = int(value)
        if value is not None:
            values[field] = value
    if not isinstance(values["kind"], str):
        raise UserError(f"{where}: search.kind must be a string ({', '.join(SEARCH_KINDS)})")
    spec = SearchSpec(**values)
    return check_search(spec, {f: f"{where}: search.{f}" for f in FIELDS})


def strategy_for(plan: Any) -> Any:
    """The strategy that carries out ``plan.search`` (a ``Strategy`` of ``core.search``)."""
    from .host import usable_cpus
    from .rates import RateSearch
    from .search import DEFAULT_SLO_BATCHES, BatchSearch, SloSearch, ThroughputSearch

    spec: SearchSpec = plan.search
    base = plan.configs[0]
    gain = spec.min_gain if spec.min_gain is not None else DEFAULT_MIN_GAIN[spec.kind]
    if spec.kind == "rate":
        return RateSearch(base, spec.p99_ms)
    if spec.kind == "batch":
        return BatchSearch(base, max_batch=max(spec.max_batch, base.batch_size), min_gain=gain)
    copies, workers = plan.axis("copies"), plan.axis("workers")
    if spec.kind == "throughput":
        max_copies = spec.max_copies or max(max(copies), _units(base) or usable_cpus())
        max_workers = spec.max_workers or max(max(workers), 4)
        return ThroughputSearch(base, max_copies=max(max_copies, base.copies),
                                max_workers=max(max_workers, base.workers_per_copy),
                                min_gain=gain)
    batches = plan.axis("batch_sizes")
    return SloSearch(base, spec.p99_ms, spec.p50_ms,
                     batch_sizes=batches if len(batches) > 1 else DEFAULT_SLO_BATCHES,
                     copies=copies, workers=workers, max_memory_mb=spec.max_memory_mb)


def _units(config: Any) -> Optional[int]:
    """How many copies the device can hold (NeuronCores), where the backend can say."""
    from .backends import backend_class

    try:
        return backend_class(config.device).units(config.device_options, config.device)
    except Exception:  # a count is a default only: never worth a failed search
        return None
