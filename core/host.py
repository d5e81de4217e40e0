"""Facts about the host a session ran on, recorded so that two sessions can be compared fairly.

Cheap and import-light: versions come from package metadata, so that recording them never
imports torch.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, Dict, Optional

try:  # Python 3.8+ has importlib.metadata; keep the import local to this module.
    from importlib import metadata as _metadata
except ImportError:  # pragma: no cover
    _metadata = None  # type: ignore[assignment]


def _version(package: str) -> Optional[str]:
    try:
        return _metadata.version(package) if _metadata else None
    except Exception:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may run on (affinity, taskset, a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_threads(copies: int, cpus: Optional[int] = None) -> int:
    """Intra-op threads per copy when the preset does not say: the usable cores shared out."""
    return max(1, (cpus or usable_cpus()) // max(copies, 1))


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def host_facts() -> Dict[str, Any]:
    """Hostname, platform, versions, CPU and memory; the ``host`` object of a session."""
    from . import __version__

    facts: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "latency_tui": __version__,
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    }
    try:
        import psutil

        facts["physical_cpus"] = psutil.cpu_count(logical=False)
        facts["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 2)
    except Exception:  # psutil is a dependency, but a host fact is never worth a crash
        pass
    try:
        facts["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    return facts
