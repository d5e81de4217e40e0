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

NVML numbers GPUs as the driver does (PCI bus order) and ignores CUDA_VISIBLE_DEVICES: match a
CUDA device to its NVML index by UUID. In a container without the host's PID namespace NVML
reports host PIDs, so this process's own work may count among ``other_processes``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .base import Reading

INSTALL_HINT = "nvidia-ml-py is not installed (pip install 'latency-tui[cuda]')"
MIN_PERIOD_S = 0.25
JOIN_TIMEOUT_S = 2.0

#: nvml.h return codes, used where a module lacks the constant (the values are the C ABI's).
_ABI_CODES = {
    "NOT_SUPPORTED": 3, "NO_PERMISSION": 4, "DRIVER_NOT_LOADED": 9, "LIBRARY_NOT_FOUND": 12,
    "FUNCTION_NOT_FOUND": 13, "GPU_IS_LOST": 15, "LIB_RM_VERSION_MISMATCH": 18,
}

_REASONS = {
    "DRIVER_NOT_LOADED": "no NVIDIA driver",
    "NO_PERMISSION": "no permission to read the GPU (NVML)",
    "LIBRARY_NOT_FOUND": "NVML library not found (no NVIDIA driver installed)",
    "LIB_RM_VERSION_MISMATCH": "NVML and the loaded driver differ (reboot or reload the driver)",
}

#: Clock event ("throttle") reason bits, nvml.h's nvmlClocksEventReason* / *ThrottleReason*.
_IDLE_OR_APP_CLOCKS = 0x1 | 0x2
_THROTTLE_NAMES = (
    (0x4, "sw power cap"), (0x8, "hw slowdown"), (0x10, "sync boost"),
    (0x20, "sw thermal"), (0x40, "hw thermal"), (0x80, "hw power brake"),
    (0x100, "display clock"),
)


class NvmlUnavailable(Exception):
    """NVML cannot be read here at all; ``reason`` is one line for a view or a log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_nvml() -> Any:
    """The ``pynvml`` module, imported only when a GPU is to be read (it is an optional extra)."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable(INSTALL_HINT) from None
    except Exception as exc:  # a broken install is still only a missing monitor
        raise NvmlUnavailable(f"nvidia-ml-py failed to import: {exc}") from None
    return pynvml


def _code(nvml: Any, name: str) -> int:
    return getattr(nvml, f"NVML_ERROR_{name}", _ABI_CODES[name])


def _describe(exc: BaseException) -> str:
    """NVML's own text for an error ("GPU is lost"); pynvml builds it with a library call."""
    try:
        text = str(exc).strip()
    except Exception:
        text = ""
    return text or f"NVML error {getattr(exc, 'value', '?')}"


def _reason(nvml: Any, exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    for name, reason in _REASONS.items():
        if value == _code(nvml, name):
            return reason
    return f"NVML: {_describe(exc)}"


def _start(nvml: Any) -> None:
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NvmlUnavailable(_reason(nvml, exc)) from None
    except Exception as exc:
        raise NvmlUnavailable(f"NVML failed to start: {exc}") from None


def _text(value: Any) -> str:
    """Older pynvml versions return bytes for names and versions."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _field(nvml: Any, call: Optional[Callable[..., Any]], *args: Any) -> Any:
    """A figure, or None where NVML says this GPU or user may not have it; other errors raise."""
    if call is None:
        return None
    try:
        return call(*args)
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) in (_code(nvml, "NOT_SUPPORTED"), _code(nvml, "NO_PERMISSION"),
                                           _code(nvml, "FUNCTION_NOT_FOUND")):
            return None
        raise


def _cuda_version(value: int) -> str:
    return f"{value // 1000}.{value % 1000 // 10}"


def gpu_facts(nvml: Any = None) -> List[Dict[str, Any]]:
    """One dict per GPU for a session's record: index, name, uuid, memory_total_mb, driver,
    cuda_driver_version, compute_capability. A fact NVML will not give is None; a GPU that
    fails outright has an ``error`` instead. Raises NvmlUnavailable when NVML cannot start."""
    nvml = nvml if nvml is not None else load_nvml()
    _start(nvml)
    try:
        driver = _field(nvml, nvml.nvmlSystemGetDriverVersion)
        cuda = _field(nvml, nvml.nvmlSystemGetCudaDriverVersion)
        common = {"driver": None if driver is None else _text(driver),
                  "cuda_driver_version": None if cuda is None else _cuda_version(int(cuda))}
        facts = []
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                facts.append({**_device_facts(nvml, index), **common})
            except nvml.NVMLError as exc:
                facts.append({"index": index, "error": _describe(exc)})
        return facts
    except nvml.NVMLError as exc:
        raise NvmlUnavailable(_reason(nvml, exc)) from None
    except Exception as exc:  # an odd binding: facts are never worth a crash
        raise NvmlUnavailable(f"NVML failed: {exc}") from None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # shutting down is best effort; the facts are already read
            pass


def _device_facts(nvml: Any, index: int) -> Dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _field(nvml, nvml.nvmlDeviceGetName, handle)
    uuid = _field(nvml, nvml.nvmlDeviceGetUUID, handle)
    memory = _field(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
    capability = _field(nvml, nvml.nvmlDeviceGetCudaComputeCapability, handle)
    return {
        "index": index,
        "name": None if name is None else _text(name),
        "uuid": None if uuid is None else _text(uuid),
        "memory_total_mb": None if memory is None else int(round(memory.total / 1e6)),
        "compute_capability": None if capability is None else "{}.{}".format(*capability),
    }


class _Gpu:
    """One GPU as the sampler keeps it: its handle, or why there is none for good."""

    __slots__ = ("index", "label", "handle", "gone")

    def __init__(self, index: int, handle: Any = None, gone: str = "") -> None:
        self.index, self.label, self.handle, self.gone = index, f"gpu{index}", handle, gone


class NvmlMonitor:
    """GPU utilisation per GPU, with memory, clocks, power, temperature, throttling and the
    number of other processes on it as metrics.

    Sampling starts on construction, at most once per ``period_s`` (not under 0.25 s: the
    views and the sampler read about once a second, faster only costs CPU). ``indices``
    picks NVML indices (all GPUs by default); ``own_pids`` are the processes that are not
    "other" (by default this process and its children, looked up when an unknown PID shows).
    ``close()`` stops the thread and shuts NVML down.
    """

    name = "gpu"

    def __init__(self, indices: Optional[Sequence[int]] = None, nvml: Any = None,
                 period_s: float = 0.25, own_pids: Optional[Iterable[int]] = None) -> None:
        self.period_s = max(MIN_PERIOD_S, float(period_s))
        self._indices = None if indices is None else [int(i) for i in indices]
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
            _start(nvml)
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
            self._publish([Reading("gpu", None, _reason(nvml, exc))])
        except Exception as exc:  # a bug or an odd binding: say so rather than go stale
            self._publish([Reading("gpu", None, f"monitor failed: {exc}")])
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:  # nothing is left to report to
                pass

    def _gpus(self, nvml: Any) -> List[_Gpu]:
        count = nvml.nvmlDeviceGetCount()
        gpus = []
        for index in (self._indices if self._indices is not None else range(count)):
            if not 0 <= index < count:
                gpus.append(_Gpu(index, gone=f"no such GPU ({count} found)"))
                continue
            try:
                gpus.append(_Gpu(index, nvml.nvmlDeviceGetHandleByIndex(index)))
            except nvml.NVMLError as exc:
                gpus.append(_Gpu(index, gone=f"lost: {_describe(exc)}"))
        return gpus

    def _read(self, nvml: Any, gpu: _Gpu) -> Reading:
        if gpu.gone:
            return Reading(gpu.label, None, gpu.gone)
        try:
            return self._sample(nvml, gpu)
        except nvml.NVMLError as exc:
            note = f"lost: {_describe(exc)}"
            if getattr(exc, "value", None) == _code(nvml, "GPU_IS_LOST"):
                gpu.gone = note  # it does not come back without a reset; stop asking
            return Reading(gpu.label, None, note)
        except Exception as exc:
            return Reading(gpu.label, None, f"monitor failed: {exc}")

    def _sample(self, nvml: Any, gpu: _Gpu) -> Reading:
        handle = gpu.handle
        metrics: List[Tuple[str, float]] = []

        def put(metric: str, value: Any) -> None:
            if value is not None:
                metrics.append((metric, float(value)))

        util = _field(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = _field(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
        used, total = (memory.used / 1e9, memory.total / 1e9) if memory is not None else (None, None)
        put("memory_used_gb", used)
        put("memory_total_gb", total)
        put("memory_util", None if util is None else util.memory)
        put("sm_clock_mhz", _field(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM))
        put("memory_clock_mhz", _field(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM))
        power = _field(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
        power = None if power is None else power / 1000.0
        limit = _field(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        limit = None if limit is None else limit / 1000.0
        put("power_w", power)
        put("power_limit_w", limit)
        temperature = _field(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        put("temperature_c", temperature)
        bits = None
        # The newer name first: drivers before 535 lack it and answer FUNCTION_NOT_FOUND.
        for getter in ("nvmlDeviceGetCurrentClocksEventReasons",
                       "nvmlDeviceGetCurrentClocksThrottleReasons"):
            bits = _field(nvml, getattr(nvml, getter, None), handle)
            if bits is not None:
                break
        reasons = [] if bits is None else _throttle_names(int(bits))
        self._reasons[gpu.index] = reasons
        put("throttled", None if bits is None else float(bool(reasons)))
        processes = _field(nvml, nvml.nvmlDeviceGetComputeRunningProcesses, handle)
        put("other_processes", None if processes is None else self._others(processes))

        parts = []
        if used is not None:
            parts.append(f"{used:.1f}/{total:.1f} GB")
        if power is not None:
            parts.append(f"{power:.0f}/{limit:.0f} W" if limit is not None else f"{power:.0f} W")
        if temperature is not None:
            parts.append(f"{temperature:.0f}°C")
        if reasons:
            parts.append("throttled: " + ", ".join(reasons))
        note = " ".join(parts)
        if util is None:
            reason = "no utilisation figure" + (f"; {note}" if note else "")
            return Reading(gpu.label, None, reason, tuple(metrics))
        return Reading(gpu.label, float(util.gpu), note, tuple(metrics))

    def _others(self, processes: Sequence[Any]) -> int:
        pids = {int(p.pid) for p in processes}
        if self._own_pids is not None:
            return len(pids - self._own_pids)
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
