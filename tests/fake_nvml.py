"""A stand-in for nvidia-ml-py's ``pynvml`` on a machine with no GPU: the same names, return
types and error codes as the real module for the calls the NVML monitor makes, with each GPU
scripted (its figures, the calls it does not support or forbids, when it falls off the bus)
and every call counted and timed, so that rates, shutdowns and lost GPUs can be checked."""

from __future__ import annotations

import collections
import threading
import time
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, Optional, Sequence

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized", NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported", NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found", NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """As pynvml's: the return code in ``value``, NVML's text as ``str()``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error code {self.value}")


class NVMLLibraryMismatchError(Exception):
    """As pynvml's (not an NVMLError): an unversioned wrapper whose versioned call the driver
    lacks (nvmlDeviceGetComputeRunningProcesses on drivers before R510)."""


class FakeGpu:
    """One GPU's script. ``unsupported`` / ``forbidden``: names of calls that answer
    NOT_SUPPORTED / NO_PERMISSION; ``lost_after``: calls on its handle before each further one
    answers GPU_IS_LOST; ``failing``: call name to the error code it answers; ``broken``: calls
    that raise a plain RuntimeError; ``mismatched``: calls that raise pynvml's
    NVMLLibraryMismatchError."""

    def __init__(self, name: str = "NVIDIA H100 80GB HBM3", uuid: str = "GPU-0000",
                 memory_total: int = 80_000_000_000, memory_used: int = 12_300_000_000,
                 util_gpu: int = 87, util_memory: int = 41, sm_clock: int = 1980,
                 memory_clock: int = 2619, power_mw: int = 250_000, power_limit_mw: int = 700_000,
                 temperature: int = 61, throttle: int = 0, pids: Sequence[int] = (),
                 capability: tuple = (9, 0), unsupported: Iterable[str] = (),
                 forbidden: Iterable[str] = (), failing: Optional[Dict[str, int]] = None,
                 broken: Iterable[str] = (), lost_after: Optional[int] = None,
                 mismatched: Iterable[str] = ()) -> None:
        self.name, self.uuid, self.capability = name, uuid, capability
        self.memory_total, self.memory_used = memory_total, memory_used
        self.util_gpu, self.util_memory = util_gpu, util_memory
        self.clocks = {1: sm_clock, 2: memory_clock}
        self.power_mw, self.power_limit_mw, self.temperature = power_mw, power_limit_mw, temperature
        self.throttle, self.pids = throttle, list(pids)
        self.unsupported, self.forbidden, self.broken = set(unsupported), set(forbidden), set(broken)
        self.failing = dict(failing or {})
        self.mismatched = set(mismatched)
        self.lost_after = lost_after
        self.calls = 0


class FakeNvml:
    """The module: pass an instance where the monitor takes ``nvml``."""

    NVMLError = NVMLError
    NVMLLibraryMismatchError = NVMLLibraryMismatchError
    NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 1, 2
    NVML_TEMPERATURE_GPU = 0
    nvmlClocksThrottleReasonNone = 0
    nvmlClocksThrottleReasonGpuIdle = 0x1
    nvmlClocksThrottleReasonApplicationsClocksSetting = 0x2
    nvmlClocksThrottleReasonSwPowerCap = 0x4
    nvmlClocksThrottleReasonHwSlowdown = 0x8
    nvmlClocksThrottleReasonSyncBoost = 0x10
    nvmlClocksThrottleReasonSwThermalSlowdown = 0x20
    nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
    nvmlClocksThrottleReasonHwPowerBrakeSlowdown = 0x80

    def __init__(self, gpus: Sequence[FakeGpu] = (), init_error: Optional[int] = None,
                 driver: str = "550.54.15", cuda: int = 12040, as_bytes: bool = False,
                 delays: Optional[Dict[str, float]] = None, event_reasons: bool = False,
                 temperature_v: bool = False, removed: Iterable[str] = (),
                 unopenable: Iterable[int] = ()) -> None:
        """``as_bytes``: strings come back as bytes, as from pynvml before 11.5; ``delays``:
        seconds a call sleeps; ``event_reasons``: also has nvmlDeviceGetCurrentClocksEventReasons,
        as nvidia-ml-py 12.535 and later do; ``temperature_v``: also has
        nvmlDeviceGetTemperatureV (nvidia-ml-py 12.560 and later); ``removed``: calls this
        module lacks (as a later one will lack the deprecated nvmlDeviceGetTemperature);
        ``unopenable``: indices whose handle this user may not have (NO_PERMISSION: GPUs a
        cgroup fences off)."""
        self.gpus = list(gpus)
        self.unopenable = set(unopenable)
        self.init_error, self.driver, self.cuda, self.as_bytes = init_error, driver, cuda, as_bytes
        self.delays = dict(delays or {})
        self.calls: Dict[str, int] = collections.Counter()
        #: When (``time.monotonic``) each call began, by name.
        self.times: Dict[str, List[float]] = collections.defaultdict(list)
        self.initialised = 0
        self._lock = threading.Lock()
        if event_reasons:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._event_reasons
        if temperature_v:
            self.nvmlDeviceGetTemperatureV = self._temperature_v
        for name in removed:  # what getattr(module, name, None) finds in a module without it
            setattr(self, name, None)

    def count(self, name: str) -> int:
        with self._lock:
            return self.calls[name]

    def started(self, name: str) -> List[float]:
        """When each call of ``name`` so far began (``time.monotonic``), oldest first."""
        with self._lock:
            return list(self.times[name])

    def _enter(self, name: str, gpu: Optional[FakeGpu] = None) -> None:
        with self._lock:
            self.calls[name] += 1
            self.times[name].append(time.monotonic())
        delay = self.delays.get(name)
        if delay:
            time.sleep(delay)
        if name not in ("nvmlInit", "nvmlShutdown") and self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if gpu is None:
            return
        gpu.calls += 1
        if gpu.lost_after is not None and gpu.calls > gpu.lost_after:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        if name in gpu.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if name in gpu.forbidden:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        if name in gpu.failing:
            raise NVMLError(gpu.failing[name])
        if name in gpu.broken:
            raise RuntimeError(f"{name} exploded")
        if name in gpu.mismatched:
            raise NVMLLibraryMismatchError(
                "Unversioned function called and the pyNVML version does not match the NVML "
                "lib version. Either use matching pyNVML and NVML lib versions or use a "
                "versioned function such as " + name + "_v2")

    def _str(self, text: str) -> Any:
        return text.encode() if self.as_bytes else text

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> Any:
        self._enter("nvmlSystemGetDriverVersion")
        return self._str(self.driver)

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._enter("nvmlSystemGetCudaDriverVersion")
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if index in self.unopenable:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> Any:
        self._enter("nvmlDeviceGetName", gpu)
        return self._str(gpu.name)

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> Any:
        self._enter("nvmlDeviceGetUUID", gpu)
        return self._str(gpu.uuid)

    def nvmlDeviceGetCudaComputeCapability(self, gpu: FakeGpu) -> tuple:
        self._enter("nvmlDeviceGetCudaComputeCapability", gpu)
        return gpu.capability

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        self._enter("nvmlDeviceGetMemoryInfo", gpu)
        return SimpleNamespace(total=gpu.memory_total, used=gpu.memory_used,
                               free=gpu.memory_total - gpu.memory_used)

    def nvmlDeviceGetUtilizationRates(self, gpu: FakeGpu) -> SimpleNamespace:
        self._enter("nvmlDeviceGetUtilizationRates", gpu)
        return SimpleNamespace(gpu=gpu.util_gpu, memory=gpu.util_memory)

    def nvmlDeviceGetClockInfo(self, gpu: FakeGpu, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", gpu)
        if clock not in gpu.clocks:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.clocks[clock]

    def nvmlDeviceGetPowerUsage(self, gpu: FakeGpu) -> int:
        self._enter("nvmlDeviceGetPowerUsage", gpu)
        return gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, gpu: FakeGpu) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit", gpu)
        return gpu.power_limit_mw

    def nvmlDeviceGetTemperature(self, gpu: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", gpu)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def _temperature_v(self, gpu: FakeGpu, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperatureV", gpu)
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, gpu: FakeGpu) -> int:
        self._enter("nvmlDeviceGetCurrentClocksThrottleReasons", gpu)
        return gpu.throttle

    def _event_reasons(self, gpu: FakeGpu) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons", gpu)
        return gpu.throttle

    def nvmlDeviceGetComputeRunningProcesses(self, gpu: FakeGpu) -> List[SimpleNamespace]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", gpu)
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in gpu.pids]

    def nvmlDeviceGetComputeRunningProcesses_v2(self, gpu: FakeGpu) -> List[SimpleNamespace]:
        self._enter("nvmlDeviceGetComputeRunningProcesses_v2", gpu)
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in gpu.pids]
