"""NVML's calls made safe for the GPU monitor and ``latency-tui devices``: loading nvidia-ml-py
(an optional extra), starting NVML, a figure the GPU or this user may not have read as None
rather than an error, an error as one line, and the facts of each GPU for a session's record.

Kept apart from the monitor (``nvml.py``) so that each reads in one sitting; the error codes are
nvml.h's, and a binding older or newer than this code (a call the driver lacks, pynvml's own
NVMLLibraryMismatchError) costs one figure, never the reading.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

INSTALL_HINT = "nvidia-ml-py is not installed (pip install nvidia-ml-py: latency-tui's 'cuda' extra)"


#: nvml.h return codes, used where a module lacks the constant (the values are the C ABI's).
_ABI_CODES = {
    "NOT_SUPPORTED": 3, "NO_PERMISSION": 4, "DRIVER_NOT_LOADED": 9, "LIBRARY_NOT_FOUND": 12,
    "FUNCTION_NOT_FOUND": 13, "GPU_IS_LOST": 15, "LIB_RM_VERSION_MISMATCH": 18,
}


REASONS = {
    "DRIVER_NOT_LOADED": "no NVIDIA driver",
    "NO_PERMISSION": "no permission to read the GPU (NVML)",
    "LIBRARY_NOT_FOUND": "NVML library not found (no NVIDIA driver installed)",
    "LIB_RM_VERSION_MISMATCH": "NVML and the loaded driver differ (reboot or reload the driver)",
}


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


def code_of(nvml: Any, name: str) -> int:
    return getattr(nvml, f"NVML_ERROR_{name}", _ABI_CODES[name])


def describe(exc: BaseException) -> str:
    """NVML's own text for an error ("GPU is lost"); pynvml builds it with a library call."""
    try:
        text = str(exc).strip()
    except Exception:
        text = ""
    return text or f"NVML error {getattr(exc, 'value', '?')}"


def reason_of(nvml: Any, exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    for name, reason in REASONS.items():
        if value == code_of(nvml, name):
            return reason
    return f"NVML: {describe(exc)}"


def start_nvml(nvml: Any) -> None:
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NvmlUnavailable(reason_of(nvml, exc)) from None
    except Exception as exc:
        raise NvmlUnavailable(f"NVML failed to start: {exc}") from None


def as_text(value: Any) -> str:
    """Older pynvml versions return bytes for names and versions."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def figure(nvml: Any, call: Optional[Callable[..., Any]], *args: Any) -> Any:
    """A figure, or None where NVML says this GPU or user may not have it; other errors raise."""
    if call is None:
        return None
    mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
    try:
        return call(*args)
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) in (code_of(nvml, "NOT_SUPPORTED"), code_of(nvml, "NO_PERMISSION"),
                                           code_of(nvml, "FUNCTION_NOT_FOUND")):
            return None
        raise
    except Exception as exc:  # pynvml's own class for a call the driver is too old for
        if mismatch is not None and isinstance(exc, mismatch):
            return None
        raise


def first_figure(nvml: Any, names: Sequence[str], *args: Any) -> Any:
    """The first of ``names`` (newest first) that this module and driver answer, or None. Any
    NVML error of a newer call (a version it does not take, an argument it refuses) falls back
    to the next; only the last one's errors are the reading's."""
    for position, name in enumerate(names):
        try:
            value = figure(nvml, getattr(nvml, name, None), *args)
        except nvml.NVMLError:
            if position == len(names) - 1:
                raise
            continue
        if value is not None:
            return value
    return None


def _cuda_version(value: int) -> str:
    return f"{value // 1000}.{value % 1000 // 10}"


def gpu_facts(nvml: Any = None) -> List[Dict[str, Any]]:
    """One dict per GPU for a session's record: index, name, uuid, memory_total_mb, driver,
    cuda_driver_version, compute_capability. A fact NVML will not give is None; a GPU that
    fails outright has an ``error`` instead. Raises NvmlUnavailable when NVML cannot start."""
    nvml = nvml if nvml is not None else load_nvml()
    start_nvml(nvml)
    try:
        driver = figure(nvml, nvml.nvmlSystemGetDriverVersion)
        cuda = figure(nvml, nvml.nvmlSystemGetCudaDriverVersion)
        common = {"driver": None if driver is None else as_text(driver),
                  "cuda_driver_version": None if cuda is None else _cuda_version(int(cuda))}
        facts = []
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                facts.append({**_device_facts(nvml, index), **common})
            except nvml.NVMLError as exc:
                facts.append({"index": index, "error": describe(exc)})
        return facts
    except nvml.NVMLError as exc:
        raise NvmlUnavailable(reason_of(nvml, exc)) from None
    except Exception as exc:  # an odd binding: facts are never worth a crash
        raise NvmlUnavailable(f"NVML failed: {exc}") from None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # shutting down is best effort; the facts are already read
            pass


def _device_facts(nvml: Any, index: int) -> Dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = figure(nvml, nvml.nvmlDeviceGetName, handle)
    uuid = figure(nvml, nvml.nvmlDeviceGetUUID, handle)
    memory = figure(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
    capability = figure(nvml, nvml.nvmlDeviceGetCudaComputeCapability, handle)
    return {
        "index": index,
        "name": None if name is None else as_text(name),
        "uuid": None if uuid is None else as_text(uuid),
        "memory_total_mb": None if memory is None else int(round(memory.total / 1e6)),
        "compute_capability": None if capability is None else "{}.{}".format(*capability),
    }
