"""Host noise checks: was the host quiet while a configuration was measured?

Readers of the system files (``root`` makes them testable against a fake ``/sys`` and
``/proc``), a ``HostProbe`` of CPU time (the host's against this process tree's), a
``NoiseWatch`` that follows a run's events and samples the probe about once a second (at each
``Utilisation``, never per sample, never on a timing thread), and pure functions that turn the
figures into a verdict: ``details["noise"] = {"verdict": "quiet" | "noisy", "reasons": [...]}``.

Session-wide facts (the frequency governor, turbo, the load before the run) are notes in
``session.host["noise"]``: they say how far to trust the host, but do not make a configuration
noisy by themselves.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from .events import ConfigFinished, PhaseChanged, Utilisation, WarmupFinished
from .host import auto_threads, usable_cpus
from .measurement import ConfigResult
from .noiseneuron import neuron_reasons

#: Other processes' load below this many CPUs is counter noise (10 ms ticks), never a reason.
MIN_CPUS = 0.25
#: Noisy when other processes kept busy on average at least the larger of these...
LOAD_MEAN_CPUS, LOAD_MEAN_FRACTION = 0.5, 0.10
#: ...or, in one sampled second, at least the larger of these.
LOAD_PEAK_CPUS, LOAD_PEAK_FRACTION = 1.0, 0.25
#: Tasks stalled on memory (PSI "some") for at least this % of the measuring time.
MEMORY_STALL_PCT = 10.0
#: Available memory fell below this % of the total.
LOW_MEMORY_PCT = 5.0
CPU_DIR = "sys/devices/system/cpu"
#: CPU time is counted in clock ticks: an interval shorter than this tells nothing of load.
MIN_INTERVAL_S = 0.25
try:
    CLOCK_TICKS = os.sysconf("SC_CLK_TCK") or 100
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    CLOCK_TICKS = 100


def _read(root: str, relative: str) -> Optional[str]:
    try:
        with open(os.path.join(root, relative), encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpu_files(root: str, pattern: str) -> List[str]:
    return sorted(glob.glob(os.path.join(root, CPU_DIR, pattern)))


# -- readers of system files -------------------------------------------------------------------

def read_governors(root: str = "/") -> Dict[str, str]:
    """``{"cpu0": "performance", ...}`` from cpufreq; empty where the host has no cpufreq."""
    out = {}
    for path in _cpu_files(root, "cpu[0-9]*/cpufreq/scaling_governor"):
        cpu = path.split(os.sep)[-3]
        value = _read("/", path)
        if value:
            out[cpu] = value
    return out


def read_turbo(root: str = "/") -> Optional[bool]:
    """Whether turbo boost is on (intel_pstate's ``no_turbo``, else cpufreq's ``boost``);
    None when the host does not say."""
    no_turbo = _read(root, f"{CPU_DIR}/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = _read(root, f"{CPU_DIR}/cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1"
    return None


def read_throttle_count(root: str = "/") -> Optional[int]:
    """Thermal throttling events so far, summed over every CPU's core and package counters;
    None where the kernel keeps none (a VM, not x86)."""
    total, seen = 0, False
    for path in _cpu_files(root, "cpu[0-9]*/thermal_throttle/*_throttle_count"):
        value = _read("/", path)
        if value is not None and value.isdigit():
            total, seen = total + int(value), True
    return total if seen else None


def read_memory_stall_us(root: str = "/") -> Optional[int]:
    """Microseconds some task stalled on memory since boot (``/proc/pressure/memory``), or None
    where the kernel has no pressure stall information."""
    text = _read(root, "proc/pressure/memory")
    for line in (text or "").splitlines():
        if line.startswith("some "):
            for part in line.split():
                if part.startswith("total=") and part[6:].isdigit():
                    return int(part[6:])
    return None


def host_noise_facts(root: str = "/", load_average: Optional[Sequence[float]] = None,
                     cpus: Optional[int] = None) -> Dict[str, Any]:
    """``session.host["noise"]``: the governor(s), turbo, and notes on what may add noise."""
    governors = read_governors(root)
    turbo = read_turbo(root)
    if load_average is None:
        try:
            load_average = os.getloadavg()
        except (AttributeError, OSError):
            load_average = None
    return {"governors": sorted(set(governors.values())), "turbo": turbo,
            "throttle_counters": read_throttle_count(root) is not None,
            "memory_pressure": read_memory_stall_us(root) is not None,
            "notes": host_notes(governors, turbo, load_average, cpus or os.cpu_count() or 1)}


def host_notes(governors: Mapping[str, str], turbo: Optional[bool],
               load_average: Optional[Sequence[float]], cpus: int) -> List[str]:
    """One line per session-wide fact that may add noise."""
    notes = []
    slow = sorted({g for g in governors.values() if g != "performance"})
    if slow:
        which = "every CPU" if len(set(governors.values())) == 1 else \
            f"{sum(g != 'performance' for g in governors.values())} of {len(governors)} CPUs"
        notes.append(f"CPU frequency governor {'/'.join(slow)} on {which}, not performance: "
                     "clocks change with load, so latencies may vary between runs")
    if turbo:
        notes.append("turbo boost on: clock speed depends on temperature and on how many "
                     "cores are busy")
    if load_average:
        one = float(load_average[0])
        if one >= max(1.0, 0.5 * cpus):
            notes.append(f"busy host: load average {one:.2f} on {cpus} CPUs before the run")
    return notes


# -- CPU time: the host's against ours ----------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    busy_s: float  # CPU seconds the whole host spent busy (steal left out)
    steal_s: float  # CPU seconds a hypervisor took
    own_s: float  # CPU seconds of this process tree
    available_pct: Optional[float] = None


def others_between(a: Snapshot, b: Snapshot, cpus: int = 1) -> Optional[Dict[str, float]]:
    """CPUs kept busy by other processes, and taken by the hypervisor, between two snapshots,
    less the counters' resolution (one clock tick per CPU and one of ours at each end), so that
    a short interval on a quiet host reads as quiet; None for an interval too short to tell."""
    span = b.at - a.at
    if span < MIN_INTERVAL_S:
        return None
    margin = (cpus + 1) / CLOCK_TICKS / span
    others = (b.busy_s - a.busy_s) - (b.own_s - a.own_s)
    return {"others": min(float(cpus), max(0.0, others / span - margin)),
            "steal": min(float(cpus), max(0.0, (b.steal_s - a.steal_s) / span - margin))}


class HostProbe:
    """Reads the host's CPU time and this process tree's (this process and its descendants:
    process copies, the engine process under the TUI). The tree is found again by
    ``refresh()``, which the watch calls as each phase begins; a process of ours that ended
    keeps the time it was last seen with."""

    def __init__(self, psutil: Any = None, clock: Callable[[], float] = time.monotonic,
                 pid: Optional[int] = None) -> None:
        if psutil is None:
            import psutil
        self.psutil = psutil
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        self.cpus = psutil.cpu_count() or 1
        self._processes: Dict[int, Any] = {}
        self._seen: Dict[int, float] = {}
        self.refresh()

    def refresh(self) -> None:
        try:
            me = self.psutil.Process(self.pid)
            tree = [me, *me.children(recursive=True)]
        except Exception:
            return
        for process in tree:
            self._processes.setdefault(process.pid, process)

    def _own(self) -> float:
        for pid, process in self._processes.items():
            try:
                times = process.cpu_times()
                self._seen[pid] = times.user + times.system
            except Exception:  # ended: it keeps what it had
                continue
        return sum(self._seen.values())

    def snapshot(self) -> Snapshot:
        t = self.psutil.cpu_times()
        busy = sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
        try:
            memory = self.psutil.virtual_memory()
            available = 100.0 * memory.available / memory.total
        except Exception:
            available = None
        return Snapshot(self.clock(), busy, getattr(t, "steal", 0.0), self._own(), available)


class Window:
    """One phase of one configuration: its first and newest snapshots and the load of each
    interval of at least ``MIN_INTERVAL_S`` between samples; throttling and memory stalls are
    read at its two ends."""

    def __init__(self, probe: HostProbe, root: str) -> None:
        self.root = root
        self.cpus = probe.cpus
        self.first = self.mark = self.last = probe.snapshot()
        self.intervals: List[Dict[str, float]] = []
        self.available = [self.first.available_pct]
        self.throttles = read_throttle_count(root)
        self.stall_us = read_memory_stall_us(root)

    def sample(self, probe: HostProbe) -> None:
        self.last = now = probe.snapshot()
        self.available.append(now.available_pct)
        interval = others_between(self.mark, now, self.cpus)
        if interval is not None:
            self.intervals.append(interval)
            self.mark = now

    def close(self, probe: HostProbe) -> Dict[str, Any]:
        """The window's figures: other processes' CPUs on average (from the two ends) and at
        their peak (the busiest sampled interval), hypervisor steal, thermal throttling
        events, the share of time tasks stalled on memory, the least available memory. The
        load is None for a window too short to tell."""
        self.sample(probe)
        whole = others_between(self.first, self.last, self.cpus)
        peaks = [i["others"] for i in self.intervals] + ([whole["others"]] if whole else [])
        throttles, stall = read_throttle_count(self.root), read_memory_stall_us(self.root)
        span = self.last.at - self.first.at
        available = [a for a in self.available if a is not None]
        return {
            "seconds": round(span, 3), "samples": len(self.intervals), "cpus": self.cpus,
            "others_cpus": round(whole["others"], 3) if whole else None,
            "others_cpus_peak": round(max(peaks), 3) if peaks else None,
            "steal_cpus": round(whole["steal"], 3) if whole else None,
            "throttle_events": None if throttles is None or self.throttles is None
            else max(0, throttles - self.throttles),
            "memory_stall_pct": None if stall is None or self.stall_us is None or span <= 0
            else round(100.0 * max(0, stall - self.stall_us) / 1e6 / span, 2),
            "available_memory_pct": round(min(available), 2) if available else None,
        }


class NoiseWatch:
    """An event sink that measures the host around each configuration: a window over its
    warm-up and one over its measuring, sampled at each ``Utilisation`` (about once a
    second). ``load(index)`` hands back (and forgets) what it found for a configuration that
    ended. Never raises: a host it cannot read is a configuration without figures."""

    def __init__(self, probe: Optional[HostProbe] = None, root: str = "/") -> None:
        self.root = root
        self._probe = probe
        self.windows: Dict[str, Window] = {}  # open windows by phase (noisemarks reads them)
        self._index: Optional[int] = None
        self._found: Dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        try:
            self._apply(event)
        except Exception:  # a check of the host is never worth a broken recording
            pass

    def _open(self, index: int, phase: str) -> None:
        if index != self._index:
            self.windows, self._found, self._index = {}, {}, index
        if self._probe is None:
            self._probe = HostProbe()
        self._probe.refresh()
        self.windows[phase] = Window(self._probe, self.root)

    def _close(self, phase: str) -> None:
        window = self.windows.pop(phase, None)
        if window is not None and self._probe is not None:
            self._found[phase] = window.close(self._probe)

    def _apply(self, event: Any) -> None:
        if isinstance(event, PhaseChanged) and event.phase in ("warmup", "measuring"):
            if event.phase == "measuring":
                self._close("warmup")
            self._open(event.index, event.phase)
        elif isinstance(event, WarmupFinished) and event.index == self._index:
            self._close("warmup")
        elif isinstance(event, Utilisation) and self._probe is not None:
            for window in self.windows.values():
                window.sample(self._probe)
        elif isinstance(event, ConfigFinished) and event.index == self._index:
            self._close("warmup")
            self._close("measuring")

    def load(self, index: int) -> Dict[str, Any]:
        found = dict(self._found) if index == self._index else {}
        if index == self._index:
            self._found, self.windows, self._index = {}, {}, None
        measuring = dict(found.get("measuring") or {})
        warmup = found.get("warmup") or {}
        if warmup.get("others_cpus") is not None:  # hypervisor steal counts as others' load
            measuring["warmup_others_cpus"] = round(warmup["others_cpus"] +
                                                    (warmup.get("steal_cpus") or 0.0), 3)
        return measuring


# -- the verdict ---------------------------------------------------------------------------------

def _cpus(n: float) -> str:
    return f"{n:.1f} CPU{'s' if round(n, 1) != 1 else ''}"


def noise_reasons(load: Mapping[str, Any], *, device: str = "cpu", threads: int = 1,
                  copies: int = 1, warmup_stable: Optional[bool] = None,
                  utilisation: Optional[Mapping[str, Any]] = None,
                  cpus: Optional[int] = None, usable: Optional[int] = None) -> List[str]:
    """Why a configuration's figures are not to be trusted as a quiet host's, one line each;
    empty when nothing was wrong (or nothing could be read). ``load`` is ``NoiseWatch``'s."""
    cpus = int(cpus or load.get("cpus") or os.cpu_count() or 1)
    usable = min(usable or usable_cpus(), cpus)
    reasons = []
    others = float(load.get("others_cpus") or 0.0)
    peak = float(load.get("others_cpus_peak") or 0.0)
    steal = float(load.get("steal_cpus") or 0.0)
    if others >= max(LOAD_MEAN_CPUS, LOAD_MEAN_FRACTION * cpus):
        reasons.append(f"other processes kept {_cpus(others)} of {cpus} busy on average "
                       f"(peak {_cpus(peak)}) while measuring")
    elif peak >= max(LOAD_PEAK_CPUS, LOAD_PEAK_FRACTION * cpus):
        reasons.append(f"other processes took up to {_cpus(peak)} of {cpus} in bursts while "
                       f"measuring (average {_cpus(others)})")
    if steal >= max(LOAD_MEAN_CPUS, LOAD_MEAN_FRACTION * cpus):
        reasons.append(f"the hypervisor took {_cpus(steal)} (steal time) while measuring")
    busy = others + steal if others + steal >= MIN_CPUS else 0.0
    demand = max(1, threads) * max(1, copies)
    if device.split(":", 1)[0] == "cpu":
        free = min(float(usable), cpus - busy)
        if demand > usable:
            reasons.append(f"{demand} intra-op threads ({threads} per copy x {copies}) on "
                           f"{usable} usable CPUs: the threads wait for each other's cores")
        elif busy and demand > free + 0.05:
            reasons.append(f"{demand} intra-op threads ({threads} per copy x {copies}) but only "
                           f"{_cpus(max(0.0, free))} free ({_cpus(busy)} of {cpus} busy with "
                           "other processes): threads wait for cores")
    warm = load.get("warmup_others_cpus")
    warm = others + steal if warm is None else float(warm)
    if warmup_stable and warm >= MIN_CPUS and (warm >= 0.5 * cpus or warm + demand > cpus):
        reasons.append(f"warm-up was called stable while the host was saturated ({_cpus(warm)} "
                       f"of {cpus} busy with other processes): it may have settled on a slow "
                       "state")
    if load.get("throttle_events"):
        reasons.append(f"the CPU throttled its clocks (thermal) {load['throttle_events']} "
                       "time(s) while measuring")
    stall = load.get("memory_stall_pct")
    if stall is not None and stall >= MEMORY_STALL_PCT:
        reasons.append(f"memory pressure: tasks stalled on memory {stall:.0f} % of the "
                       "measuring time")
    available = load.get("available_memory_pct")
    if available is not None and available < LOW_MEMORY_PCT:
        reasons.append(f"available memory fell to {available:.1f} % while measuring: "
                       "reclaim and swapping stall inferences")
    reasons.extend(accelerator_reasons(utilisation or {}))
    reasons.extend(neuron_reasons(load))  # NeuronCores held by other processes (Neuron)
    return reasons


def accelerator_reasons(utilisation: Mapping[str, Any]) -> List[str]:
    """What the GPU monitor saw: clocks throttled and other processes on the device (the same
    lines as the engine's warnings), SM clocks that varied, power at the cap."""
    from .monitors.sampler import utilisation_warnings

    entries = {label: entry for label, entry in utilisation.items() if isinstance(entry, dict)}
    reasons = utilisation_warnings({label: {k: entry[k] for k in ("throttled", "other_processes")
                                            if k in entry} for label, entry in entries.items()})
    for label, entry in entries.items():
        clock, power, limit = (entry.get(k) if isinstance(entry.get(k), dict) else {}
                               for k in ("sm_clock_mhz", "power_w", "power_limit_w"))
        if clock.get("max") and clock.get("mean") is not None and clock["mean"] < 0.9 * clock["max"]:
            reasons.append(f"{label}: SM clocks varied while measuring (mean {clock['mean']:.0f} "
                           f"MHz, max {clock['max']:.0f} MHz)")
        if limit.get("mean") and power.get("max") and power["max"] >= 0.98 * limit["mean"]:
            reasons.append(f"{label} ran at its power cap ({power['max']:.0f} of "
                           f"{limit['mean']:.0f} W): its clocks are held down")
    return reasons


def verdict(reasons: Sequence[str]) -> Dict[str, Any]:
    return {"verdict": "noisy" if reasons else "quiet", "reasons": list(reasons)}


def with_noise(result: ConfigResult, load: Mapping[str, Any]) -> ConfigResult:
    """``result`` with ``details["noise"]`` (the verdict), ``details["host_load"]`` (the
    figures) and each reason among its warnings."""
    config = result.config
    threads = result.details.get("threads_per_copy") if isinstance(result.details, dict) else None
    threads = threads or config.threads_per_copy or auto_threads(config.copies)
    held = result.details.get("neuron_holders") if isinstance(result.details, dict) else None
    reasons = noise_reasons({**load, "neuron_holders": held} if held is not None else load,
                            device=config.device, threads=int(threads),
                            copies=config.copies, warmup_stable=result.warmup_stable,
                            utilisation=result.utilisation)
    warnings = tuple(result.warnings) + tuple(r for r in reasons if r not in result.warnings)
    details = {**result.details, "noise": verdict(reasons)}
    if load:
        details["host_load"] = dict(load)
    return replace(result, details=details, warnings=warnings)
