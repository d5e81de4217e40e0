"""Reading AWS Neuron's own tools: ``neuron-ls --json-output`` (the host's devices, their cores
and the processes holding them) and one ``neuron-monitor`` report (per-core utilisation and
memory, execution counts, the runtime's own latency percentiles).

The parsers are pure functions, tested against real captures (tests/fixtures/neuron/). The two
are read differently on purpose. ``neuron-ls`` output is checked: a wrong shape is a
``ValueError`` with the reason, since placing copies on cores from a misread listing would be
worse than saying the listing is unreadable. A ``neuron-monitor`` report is read leniently: its
shape changed across Neuron releases (``inference_stats`` became ``execution_stats``, the
hardware section grew), and a monitor must never take a run down, so any part that is missing
or of another shape reads as None or empty.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ..text import single_line

#: The percentiles neuron-monitor reports (seconds there, milliseconds here).
LATENCY_KEYS = ("p0", "p1", "p25", "p50", "p75", "p99", "p100")
#: ``execution_summary`` outcomes that are executions which did not succeed. ``error_summary``
#: (errors by kind) is kept apart: it overlaps these, and captures show it counting far more
#: than there were executions (runtime-level events), so adding it in would count twice.
FAILED_OUTCOMES = ("completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input",
                   "failed_to_queue")
NOT_INSTALLED = "the Neuron tools (aws-neuronx-tools) are not installed"


@dataclass(frozen=True)
class NeuronProcess:
    """A process holding a Neuron device, as neuron-ls lists it."""

    pid: int
    command: str
    runtime_version: str


@dataclass(frozen=True)
class NeuronDevice:
    """One device from neuron-ls; ``core_ids`` are host-wide core indices (see ``parse_neuron_ls``)."""

    index: int
    nc_count: int
    memory_bytes: Optional[int]
    core_ids: Tuple[int, ...]
    processes: Tuple[NeuronProcess, ...]


def held_cores(devices: List[NeuronDevice]) -> Dict[int, NeuronProcess]:
    """Host-wide core index -> the process holding that core's device.

    neuron-ls lists processes per device, not per core: every core of a device with a process
    maps to it, and where a device has several, to the first listed. Good enough to name who is
    in the way when a load fails with ``NERR_RESOURCE_NC``; not a per-core ownership map.
    """
    return {core: device.processes[0] for device in devices if device.processes
            for core in device.core_ids}


def holders(processes: Iterable[NeuronProcess]) -> str:
    """``"python serve.py (pid 4242), ..."``: processes as a message names them."""
    return ", ".join(sorted({f"{p.command or '?'} (pid {p.pid})" for p in processes}))


def core_spans(cores: Iterable[int]) -> List[List[int]]:
    """``[0, 1, 2, 5]`` -> ``[[0, 2], [5, 5]]``: runs of consecutive cores, first and last."""
    spans: List[List[int]] = []
    for core in sorted(set(cores)):
        if spans and core == spans[-1][1] + 1:
            spans[-1][1] = core
        else:
            spans.append([core, core])
    return spans


def core_ranges(cores: Iterable[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"`` (the ranges ``NEURON_RT_VISIBLE_CORES`` takes)."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in core_spans(cores))


def parse_core_ranges(text: str) -> Set[int]:
    """``"0-2,5"`` -> ``{0, 1, 2, 5}``; what is not a core or range is left out."""
    out: Set[int] = set()
    for part in (text or "").replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if first.isdigit() and (last.isdigit() or not dash):
            out.update(range(int(first), int(last or first) + 1))
    return out


def parse_neuron_ls(text: str) -> List[NeuronDevice]:
    """The devices in ``neuron-ls --json-output``, in device order.

    Cores are numbered across the host: neuron-ls's table shows device 1 of a trn1.32xlarge with
    core ids 2-3, the numbering ``NEURON_RT_VISIBLE_CORES`` and neuron-monitor use. Where the ids
    repeat from one device to the next they are local to each device, and are shifted by the
    cores of the devices before (device d of n-core devices: d*n + local id). Without
    ``neuroncore_ids`` a device's cores are the next ``nc_count`` indices.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of devices, got {type(data).__name__}")
    raw = sorted((_device(i, entry) for i, entry in enumerate(data)), key=lambda d: d[0])
    seen = [core for _, _, _, ids, _ in raw for core in (ids or ())]
    local = len(seen) != len(set(seen))
    devices, offset = [], 0
    for index, nc_count, memory, ids, processes in raw:
        if ids is None:
            ids = tuple(range(nc_count))
            shift = offset
        else:
            shift = offset if local else 0
        devices.append(NeuronDevice(index, nc_count, memory, tuple(shift + i for i in ids), processes))
        offset += len(ids)
    return devices


def _device(position: int, entry: Any) -> Tuple[int, int, Optional[int], Optional[Tuple[int, ...]],
                                                Tuple[NeuronProcess, ...]]:
    where = f"device #{position}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is a {type(entry).__name__}, not an object")
    index, nc_count = _int(entry.get("neuron_device")), _int(entry.get("nc_count"))
    if index is None or index < 0:
        raise ValueError(f"{where} has no neuron_device index")
    if nc_count is None or nc_count < 0:
        raise ValueError(f"{where} has no nc_count")
    ids = entry.get("neuroncore_ids")
    if ids is not None:
        if not isinstance(ids, list) or any(_int(i) is None or i < 0 for i in ids):
            raise ValueError(f"{where}: neuroncore_ids is not a list of core indices")
        ids = tuple(int(i) for i in ids)
    processes = []
    for item in entry.get("neuron_processes") or []:
        pid = _int(item.get("pid")) if isinstance(item, dict) else None
        if pid is None:
            raise ValueError(f"{where}: a neuron_processes entry has no pid")
        processes.append(NeuronProcess(pid, _text(item.get("command")),
                                       _text(item.get("neuron_runtime_version"))))
    return index, nc_count, _int(entry.get("memory_size")), ids, tuple(processes)


def neuron_ls(executable: str = "neuron-ls", timeout: float = 5.0,
              run: Callable[..., Any] = subprocess.run) -> Tuple[List[NeuronDevice], Optional[str]]:
    """``(devices, None)``, or ``([], reason)`` when there is nothing to list or no way to list
    it: the tools are missing, there is no device (neuron-ls then exits 1 with a ``FATA`` line),
    it hangs, or it prints something unreadable."""
    try:
        done = run([executable, "--json-output"], capture_output=True, text=True, encoding="utf-8",
                   errors="replace", timeout=timeout)
    except FileNotFoundError:
        return [], f"{executable} not found: {NOT_INSTALLED}"
    except subprocess.TimeoutExpired:
        return [], f"{executable} timed out after {timeout:g} s"
    except OSError as exc:
        return [], f"{executable} could not run: {single_line(exc, 200)}"
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
        line = next((x for x in lines if x.startswith("FATA")), lines[-1] if lines else "")
        if "discover" in line.lower():
            return [], f"no Neuron device ({executable}: {single_line(line, 200)})"
        return [], f"{executable} failed (exit {done.returncode}): {single_line(line, 200) or 'no message'}"
    try:
        devices = parse_neuron_ls(done.stdout or "")
    except ValueError as exc:
        return [], f"{executable} printed something unreadable: {single_line(exc, 200)}"
    if not devices:
        return [], f"no Neuron device ({executable} listed none)"
    return devices, None


@dataclass(frozen=True)
class CoreFigures:
    """One NeuronCore in one report, summed over the runtimes that list it."""

    utilisation: Optional[float]
    device_memory_bytes: Optional[int]
    flops: Optional[float] = None


@dataclass(frozen=True)
class MonitorReport:
    """One neuron-monitor report, over all the runtimes it saw (see ``parse_monitor_report``)."""

    cores: Dict[int, CoreFigures] = field(default_factory=dict, hash=False)
    runtimes: int = 0
    host_memory_bytes: Optional[int] = None
    completed: int = 0
    errors: int = 0
    latency_ms: Dict[str, Dict[str, float]] = field(default_factory=dict, hash=False)
    instance_type: Optional[str] = None
    vcpu_percent: Optional[float] = None
    device_count: Optional[int] = None
    cores_per_device: Optional[int] = None
    error_summary: Dict[str, int] = field(default_factory=dict, hash=False)
    latency_ms_by_pid: Dict[int, Dict[str, Dict[str, float]]] = field(default_factory=dict, hash=False)


def parse_monitor_line(line: str) -> MonitorReport:
    """One line of neuron-monitor's stdout; ValueError when it is not a JSON object."""
    try:
        obj = json.loads(line)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    return parse_monitor_report(obj)


def parse_monitor_report(obj: dict) -> MonitorReport:
    """One neuron-monitor report, aggregated across its runtimes.

    Every runtime lists every core, with 0 where it does not own it, so a core's utilisation is
    the sum over runtimes (capped at 100), as are its device memory, the execution counts and
    the runtimes' host memory. ``latency_ms`` is ``{"total" | "device": {"p50": ms, ...}}``
    merged over runtimes (``merge_percentiles``); ``latency_ms_by_pid`` keeps each runtime's own.
    No runtime attached (``neuron_runtime_data: []``) leaves ``cores`` empty: absent, not 0 %.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"a neuron-monitor report is a JSON object, not {type(obj).__name__}")
    entries = [e for e in _list(obj.get("neuron_runtime_data")) if isinstance(e, dict)]
    util: Dict[int, float] = {}
    memory: Dict[int, int] = {}
    flops: Dict[int, float] = {}
    listed: Set[int] = set()
    host: Optional[int] = None
    completed = errors = 0
    error_summary: Dict[str, int] = {}
    sides: Dict[str, List[Tuple[int, Dict[str, float]]]] = {}
    by_pid: Dict[int, Dict[str, Dict[str, float]]] = {}
    for entry in entries:
        report = _dict(entry.get("report"))
        counters = _dict(report.get("neuroncore_counters"))
        for core, figures in _cores(counters.get("neuroncores_in_use")):
            listed.add(core)  # listed without a readable figure: there, utilisation unknown
            _add(util, core, _num(figures.get("neuroncore_utilization")))
            flop = _num(figures.get("flops"))
            _add(flops, core, flop if flop is not None else _num(figures.get("effective_flops")))
        used = _dict(_dict(report.get("memory_used")).get("neuron_runtime_used_bytes"))
        if _int(used.get("host")) is not None:
            host = (host or 0) + int(used["host"])
        for core, size in _core_memory(report):
            _add(memory, core, size)
        stats = _dict(report.get("execution_stats") or report.get("inference_stats"))
        summary = _dict(stats.get("execution_summary") or stats.get("inference_summary"))
        done = _int(summary.get("completed")) or 0
        completed += done
        errors += sum(_int(summary.get(key)) or 0 for key in FAILED_OUTCOMES)
        for kind, count in _dict(stats.get("error_summary")).items():
            if _int(count) is not None:
                error_summary[str(kind)] = error_summary.get(str(kind), 0) + int(count)
        own = {}
        for side in ("total", "device"):
            percentiles = _percentiles_ms(_dict(stats.get("latency_stats")).get(f"{side}_latency"))
            if percentiles:
                own[side] = percentiles
                sides.setdefault(side, []).append((done, percentiles))
        pid = _int(entry.get("pid"))
        if pid is not None and own:
            by_pid[pid] = own
    cores = {core: CoreFigures(min(100.0, max(0.0, util[core])) if core in util else None,
                               memory.get(core), flops.get(core))
             for core in sorted(listed | set(memory))}
    hardware = _dict(obj.get("neuron_hardware_info"))
    instance = _dict(obj.get("instance_info") or obj.get("instance_data")).get("instance_type")
    return MonitorReport(
        cores=cores, runtimes=len(entries), host_memory_bytes=host, completed=completed,
        errors=errors, latency_ms={side: merge_percentiles(parts) for side, parts in sides.items()},
        instance_type=single_line(instance, 64) if isinstance(instance, str) and instance else None,
        vcpu_percent=_vcpu_percent(_dict(_dict(obj.get("system_data")).get("vcpu_usage"))),
        device_count=_int(hardware.get("neuron_device_count")),
        cores_per_device=_int(hardware.get("neuroncore_per_device_count")),
        error_summary=error_summary, latency_ms_by_pid=by_pid,
    )


def merge_percentiles(parts: List[Tuple[int, Dict[str, float]]]) -> Dict[str, float]:
    """Several runtimes' percentiles ``[(completed, {"p50": ms, ...})]`` as one set.

    The pooled p0 and p100 are exact (the least and the greatest); the samples behind the other
    percentiles are not reported, so those are the completion-weighted mean of the runtimes'
    own: exact for one runtime, always between the least and the greatest of the runtimes'
    values, and only rough in the tail when one copy differs (the inf1 capture: p99 of 3.7 to
    67 ms per runtime, merged 21.8). ``latency_ms_by_pid`` has each copy's own.
    """
    if len(parts) == 1:
        return dict(parts[0][1])
    out: Dict[str, float] = {}
    for key in LATENCY_KEYS:
        seen = [(max(0, weight), p[key]) for weight, p in parts if key in p]
        if not seen:
            continue
        total = sum(weight for weight, _ in seen)
        if key == "p0":
            out[key] = min(value for _, value in seen)
        elif key == "p100":
            out[key] = max(value for _, value in seen)
        elif total > 0:
            out[key] = sum(weight * value for weight, value in seen) / total
        else:
            out[key] = sum(value for _, value in seen) / len(seen)
    return out


def monitor_config(period_s: float = 1.0) -> dict:
    """The neuron-monitor configuration this tool runs it with: every runtime on the host, the
    metric groups read above, a report every ``period_s``."""
    if not (isinstance(period_s, (int, float)) and math.isfinite(period_s) and period_s > 0):
        raise ValueError(f"period_s must be a positive number of seconds, not {period_s!r}")
    period = f"{int(period_s)}s" if float(period_s).is_integer() else f"{max(1, round(period_s * 1000))}ms"
    return {
        "period": period,
        "neuron_runtimes": [{"tag_filter": ".*", "metrics": [
            {"type": "neuroncore_counters"}, {"type": "memory_used"}, {"type": "execution_stats"}]}],
        "system_metrics": [{"type": "vcpu_usage"}, {"type": "memory_info"}],
    }


def _core_memory(report: dict) -> List[Tuple[int, int]]:
    """(core, device bytes) of one runtime: the per-core breakdown (runtime 2.x), or else the sum
    of its models' subgraphs per core (older reports have no breakdown)."""
    used = _dict(_dict(report.get("memory_used")).get("neuron_runtime_used_bytes"))
    breakdown = _dict(_dict(used.get("usage_breakdown")).get("neuroncore_memory_usage"))
    if breakdown:
        out = []
        for core, parts in _cores(breakdown, raw=True):
            size = _int(parts)  # a bare number, or {"constants": n, "model_code": n, ...}
            out.append((core, size if size is not None else
                        sum(_int(v) or 0 for v in _dict(parts).values())))
        return out
    out = []
    for model in _list(_dict(report.get("memory_used")).get("loaded_models")):
        for subgraph in _dict(_dict(model).get("subgraphs")).values():
            subgraph = _dict(subgraph)
            core = _int(subgraph.get("neuroncore_index"))
            size = _int(_dict(subgraph.get("memory_used_bytes")).get("neuron_device"))
            if core is not None and size is not None:
                out.append((core, size))
    return out


def _cores(mapping: Any, raw: bool = False) -> List[Tuple[int, Any]]:
    """(core index, value) for the ``{"0": ..., "1": ...}`` maps neuron-monitor keys by core."""
    out = []
    for key, value in _dict(mapping).items():
        try:
            core = int(key)
        except (TypeError, ValueError):
            continue
        if core >= 0 and (raw or isinstance(value, dict)):
            out.append((core, value))
    return out


def _percentiles_ms(side: Any) -> Dict[str, float]:
    side = _dict(side)  # null when the runtime ran nothing in the period
    return {key: _num(side.get(key)) * 1000.0 for key in LATENCY_KEYS if _num(side.get(key)) is not None}


def _vcpu_percent(usage: dict) -> Optional[float]:
    """Busy share of the host's vCPUs, averaged over them: all but idle and I/O wait."""
    shares = _dict(usage.get("average_usage"))
    busy = [_num(shares.get(k)) for k in ("user", "nice", "system", "irq", "soft_irq")]
    if any(b is not None for b in busy):
        return min(100.0, max(0.0, sum(b for b in busy if b is not None)))
    return None


def _add(totals: Dict[int, Any], core: int, value: Any) -> None:
    if value is not None:
        totals[core] = totals.get(core, 0) + value


def _num(value: Any) -> Optional[float]:
    """A finite JSON number (a bool is not one), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _num(value)
    return int(number) if number is not None and number.is_integer() else None


def _text(value: Any) -> str:
    return single_line(value, 200) if isinstance(value, str) else ""


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
