"""NVIDIA GPUs read through NVML (the ``pynvml`` module of nvidia-ml-py), never nvidia-smi.

NVML rather than nvidia-smi: a library call per figure instead of a subprocess per sample, no
text format that shifts between driver versions, and an error code that says which figure a
GPU refuses.

The monitor reads in a thread of its own and ``poll()`` hands back the newest readings: most
NVML calls take microseconds, but ``nvmlInit`` can take seconds on a GPU without persistence
mode, and a GPU falling off the bus can stall a call as long; neither may stall a view or the
engine's sampler.

What NVML will not give stays absent: a figure the GPU does not support or this user may not
read is left out of the reading, never reported as 0. GB and MB are decimal (1e9, 1e6 bytes),
as elsewhere in latency-tui; an "80 GB" card reads about 85 GB.

NVML numbers GPUs as the driver does (PCI bus order) and ignores CUDA_VISIBLE_DEVICES: given
the run's CUDA devices (``cuda_indices``), the monitor reads only those, found through
CUDA_VISIBLE_DEVICES (by UUID where it names them) and labelled as the run numbers them
(``gpu0`` is ``cuda:0``), so that another user's job on a GPU the run does not use is not
this run's noise. In a container without the host's PID namespace NVML reports host PIDs,
which cannot be told from this run's own: there ``other_processes`` is left out, and says so.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .base import Reading
from .nvmlcalls import (  # noqa: F401  (INSTALL_HINT, gpu_facts, load_nvml: this module's API too)
    INSTALL_HINT, REASONS, NvmlUnavailable, as_text, code_of, describe, figure, first_figure,
    gpu_facts, load_nvml, reason_of, start_nvml,
)

MIN_PERIOD_S = 0.25
JOIN_TIMEOUT_S = 2.0


#: Clock event ("throttle") reason bits, nvml.h's nvmlClocksEventReason* / *ThrottleReason*.
_IDLE_OR_APP_CLOCKS = 0x1 | 0x2
_THROTTLE_NAMES = (
    (0x4, "sw power cap"), (0x8, "hw slowdown"), (0x10, "sync boost"),
    (0x20, "sw thermal"), (0x40, "hw thermal"), (0x80, "hw power brake"),
    (0x100, "display clock"), (0x200, "board limit"), (0x400, "reliability"),
)
#: Each figure's calls, newest first: a driver without the newer one answers FUNCTION_NOT_FOUND
#: (or, for an unversioned wrapper of a versioned call, pynvml's NVMLLibraryMismatchError).
_TEMPERATURE = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")
_CLOCK_REASONS = ("nvmlDeviceGetCurrentClocksEventReasons",
                  "nvmlDeviceGetCurrentClocksThrottleReasons")
_PROCESSES = ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2")
#: The initial PID namespace's inode number (Linux 3.8 and later): elsewhere, a container.
_INITIAL_PID_NAMESPACE = 0xEFFFFFFC
NO_PIDS_NOTE = "other processes unknown in a container (NVML gives host PIDs)"


def shares_host_pids() -> bool:
    """Whether this process sees the host's PIDs, as NVML reports them (not in a container
    with a PID namespace of its own). Where it cannot be told, it is assumed."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino == _INITIAL_PID_NAMESPACE
    except OSError:
        return True


def cuda_targets(nvml: Any, cuda_indices: Sequence[int]) -> Optional[Dict[int, int]]:
    """NVML index -> CUDA index (as this process numbers its GPUs) of ``cuda_indices``, or None
    where that cannot be known: a MIG instance or an unknown UUID in CUDA_VISIBLE_DEVICES; a
    host whose GPUs differ while CUDA orders them fastest first (CUDA_DEVICE_ORDER unset); or
    an index this user may not open (GPUs fenced off by a cgroup, as a batch scheduler does:
    CUDA then numbers the job's own GPUs from 0, NVML every GPU of the host)."""
    from ..backends.cuda import visible_devices

    visible = visible_devices()
    count = int(nvml.nvmlDeviceGetCount())
    handles: Dict[int, Any] = {}
    for i in range(count):
        try:
            handles[i] = nvml.nvmlDeviceGetHandleByIndex(i)
        except nvml.NVMLError:  # a GPU this user may not open is none of this run's
            pass
    uuids: Optional[Dict[str, int]] = None
    targets: Dict[int, int] = {}
    for cuda_index in cuda_indices:
        entry = str(cuda_index) if visible is None else (
            visible[cuda_index] if cuda_index < len(visible) else None)
        if entry is None:
            return None
        if entry.isdigit():
            if int(entry) not in handles:
                return None
            targets[int(entry)] = cuda_index
            continue
        if not entry.startswith("GPU-"):
            return None  # a MIG instance: NVML gives its utilisation to no one
        if uuids is None:
            uuids = {as_text(nvml.nvmlDeviceGetUUID(h)): i for i, h in handles.items()}
        matches = [i for uuid, i in uuids.items() if uuid.startswith(entry)]
        if len(matches) != 1:
            return None
        targets[matches[0]] = cuda_index
    if os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID" and any(
            not entry.startswith("GPU-") for entry in (visible or ["0"])):
        names = {as_text(nvml.nvmlDeviceGetName(h)) for h in handles.values()}
        if len(names) > 1:  # fastest first may not be PCI order: indices would not match
            return None
    return targets


class _Gpu:
    """One GPU as the sampler keeps it: its handle, or why there is none for good."""

    __slots__ = ("index", "label", "handle", "gone")

    def __init__(self, index: int, label: int, handle: Any = None, gone: str = "") -> None:
        self.index, self.label, self.handle, self.gone = index, f"gpu{label}", handle, gone


class NvmlMonitor:
    """GPU utilisation per GPU, with memory, clocks, power, temperature, throttling and the
    number of other processes on it as metrics.

    Sampling starts on construction, at most once per ``period_s`` (not under 0.25 s: the
    views and the sampler read about once a second, faster only costs CPU). ``indices``
    picks NVML indices; ``cuda_indices`` the run's CUDA devices instead, labelled as CUDA
    numbers them (all GPUs when neither is given or the CUDA devices cannot be found);
    ``own_pids`` are the processes that are not "other" (by default this process and its
    children, looked up when an unknown PID shows; in a container, where NVML's PIDs are the
    host's, none can be told apart and the figure is left out: ``host_pids``).
    ``close()`` stops the thread and shuts NVML down.
    """

    name = "gpu"

    def __init__(self, indices: Optional[Sequence[int]] = None, nvml: Any = None,
                 period_s: float = 0.25, own_pids: Optional[Iterable[int]] = None,
                 cuda_indices: Optional[Sequence[int]] = None,
                 host_pids: Optional[bool] = None) -> None:
        self.period_s = max(MIN_PERIOD_S, float(period_s))
        self._indices = None if indices is None else [int(i) for i in indices]
        self._cuda_indices = None if cuda_indices is None else [int(i) for i in cuda_indices]
        self._host_pids = shares_host_pids() if host_pids is None else host_pids
        self._own_pids = None if own_pids is None else frozenset(int(p) for p in own_pids)
        self._family: Set[int] = {os.getpid()}
        self._strangers: Set[int] = set()
        self._reasons: Dict[int, List[str]] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        # Replaced whole, never mutated, so that poll() needs no lock and never waits.
        self._readings: List[Reading] = [Reading("gpu", None, "starting")]
        try:
            self._nvml = nvml if nvml is not None else load_nvml()
        except NvmlUnavailable as exc:
            self._readings = [Reading("gpu", None, exc.reason)]
            return
        self._thread = threading.Thread(target=self._run, name="latency-tui-nvml", daemon=True)
        self._thread.start()

    def poll(self) -> List[Reading]:
        return list(self._readings)

    def throttle_reasons(self, index: int) -> List[str]:
        """Why GPU ``index``'s clocks were held down at the last sample ("sw power cap"...);
        idling and application clock settings do not count."""
        return list(self._reasons.get(index, ()))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # The thread shuts NVML down as it leaves, so a call still in flight ends first.
            self._thread.join(JOIN_TIMEOUT_S)
        self._readings = [Reading("gpu", None, "closed")]

    def _publish(self, readings: List[Reading]) -> None:
        if not self._stop.is_set():
            self._readings = readings

    def _run(self) -> None:
        nvml = self._nvml
        try:
            start_nvml(nvml)
        except NvmlUnavailable as exc:
            self._publish([Reading("gpu", None, exc.reason)])
            return
        try:
            gpus = self._gpus(nvml)
            if not gpus:
                self._publish([Reading("gpu", None, "no NVIDIA GPU found")])
                return
            self._publish([Reading(g.label, None, g.gone or "measuring") for g in gpus])
            while not self._stop.is_set():
                self._publish([self._read(nvml, gpu) for gpu in gpus])
                self._stop.wait(self.period_s)
        except nvml.NVMLError as exc:
            self._publish([Reading("gpu", None, reason_of(nvml, exc))])
        except Exception as exc:  # a bug or an odd binding: say so rather than go stale
            self._publish([Reading("gpu", None, f"monitor failed: {exc}")])
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:  # nothing is left to report to
                pass

    def _gpus(self, nvml: Any) -> List[_Gpu]:
        count = nvml.nvmlDeviceGetCount()
        labels: Dict[int, int] = {}
        if self._indices is None and self._cuda_indices is not None:
            try:
                labels = cuda_targets(nvml, self._cuda_indices) or {}
            except nvml.NVMLError:  # the run's GPUs cannot be told: all are read
                labels = {}
        indices = sorted(labels) if labels else self._indices
        gpus = []
        for index in (indices if indices is not None else range(count)):
            label = labels.get(index, index)
            if not 0 <= index < count:
                gpus.append(_Gpu(index, label, gone=f"no such GPU ({count} found)"))
                continue
            try:
                gpus.append(_Gpu(index, label, nvml.nvmlDeviceGetHandleByIndex(index)))
            except nvml.NVMLError as exc:
                gone = (REASONS["NO_PERMISSION"] if getattr(exc, "value", None) ==
                        code_of(nvml, "NO_PERMISSION") else f"lost: {describe(exc)}")
                gpus.append(_Gpu(index, label, gone=gone))
        return gpus

    def _read(self, nvml: Any, gpu: _Gpu) -> Reading:
        if gpu.gone:
            return Reading(gpu.label, None, gpu.gone)
        try:
            return self._sample(nvml, gpu)
        except nvml.NVMLError as exc:
            self._reasons.pop(gpu.index, None)
            note = f"lost: {describe(exc)}"
            if getattr(exc, "value", None) == code_of(nvml, "GPU_IS_LOST"):
                gpu.gone = note  # it does not come back without a reset; stop asking
            return Reading(gpu.label, None, note)
        except Exception as exc:
            self._reasons.pop(gpu.index, None)
            return Reading(gpu.label, None, f"monitor failed: {exc}")

    def _sample(self, nvml: Any, gpu: _Gpu) -> Reading:
        handle = gpu.handle
        metrics: List[Tuple[str, float]] = []

        def put(metric: str, value: Any) -> None:
            if value is not None:
                metrics.append((metric, float(value)))

        util = figure(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = figure(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
        used, total = (memory.used / 1e9, memory.total / 1e9) if memory is not None else (None, None)
        put("memory_used_gb", used)
        put("memory_total_gb", total)
        put("memory_util", None if util is None else util.memory)
        put("sm_clock_mhz", figure(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM))
        put("memory_clock_mhz", figure(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM))
        power = figure(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
        power = None if power is None else power / 1000.0
        limit = figure(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        limit = None if limit is None else limit / 1000.0
        put("power_w", power)
        put("power_limit_w", limit)
        temperature = first_figure(nvml, _TEMPERATURE, handle, nvml.NVML_TEMPERATURE_GPU)
        put("temperature_c", temperature)
        bits = first_figure(nvml, _CLOCK_REASONS, handle)
        reasons = [] if bits is None else _throttle_names(int(bits))
        self._reasons[gpu.index] = reasons
        put("throttled", None if bits is None else float(bool(reasons)))
        processes = first_figure(nvml, _PROCESSES, handle)
        others = None if processes is None else self._others(processes)
        put("other_processes", others)

        parts = []
        if used is not None:
            parts.append(f"{used:.1f}/{total:.1f} GB")
        if power is not None:
            parts.append(f"{power:.0f}/{limit:.0f} W" if limit is not None else f"{power:.0f} W")
        if temperature is not None:
            parts.append(f"{temperature:.0f}°C")
        if reasons:
            parts.append("throttled: " + ", ".join(reasons))
        if processes is not None and others is None:
            parts.append(NO_PIDS_NOTE)
        note = " ".join(parts)
        if util is None:
            reason = "no utilisation figure" + (f"; {note}" if note else "")
            return Reading(gpu.label, None, reason, tuple(metrics))
        return Reading(gpu.label, float(util.gpu), note, tuple(metrics))

    def _others(self, processes: Sequence[Any]) -> Optional[int]:
        pids = {int(p.pid) for p in processes}
        if self._own_pids is not None:
            return len(pids - self._own_pids)
        if not self._host_pids:
            return None
        if not pids <= self._family | self._strangers:
            self._family = _family()
            self._strangers |= pids - self._family
        return len(pids - self._family)


def _throttle_names(bits: int) -> List[str]:
    """The reasons in ``bits`` that hold clocks below what the work asks for."""
    bits &= ~_IDLE_OR_APP_CLOCKS
    names = [name for bit, name in _THROTTLE_NAMES if bits & bit]
    rest = bits & ~sum(bit for bit, _ in _THROTTLE_NAMES)
    return names + ([f"0x{rest:x}"] if rest else [])


def _family() -> Set[int]:
    """This process and its children (copies, workers), for telling our GPU work from others'."""
    me = os.getpid()
    try:
        import psutil

        return {me, *(child.pid for child in psutil.Process(me).children(recursive=True))}
    except Exception:  # psutil is a dependency; without it only this process counts as ours
        return {me}
