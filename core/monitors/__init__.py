"""Device monitors: what the host, a GPU or a NeuronCore is doing while a run proceeds.

A monitor has a ``name`` and a ``poll()`` that returns its current readings, quickly: a source
that is slow to read (neuron-monitor streams JSON from a subprocess) keeps its own reader thread
and hands back the latest values. A reading without a value says why
(``Reading("gpu0", None, "no NVIDIA driver")``): views show "N/A (no NVIDIA driver)", never a
fake 0 %.

Monitors are read off the timing threads: by the engine's ``MonitorSampler`` (its own thread,
about once a second), which emits ``Utilisation`` events for the views and summarises each
configuration's readings into its result; and, between runs, by the TUI itself.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from .base import Monitor, Reading, StaticMonitor, UnavailableMonitor
from .host import CpuMonitor, MemoryMonitor
from .sampler import MonitorSampler, summarise

__all__ = [
    "CpuMonitor", "MemoryMonitor", "Monitor", "MonitorSampler", "Reading", "StaticMonitor",
    "UnavailableMonitor", "default_monitors", "summarise",
]


def default_monitors(device: str = "cpu") -> List[Monitor]:
    """The monitors for a device: host CPU and memory always; the GPUs through NVML for CUDA,
    the NeuronCores through neuron-monitor for Neuron, or, when that cannot be read here, a
    placeholder that says why."""
    monitors: List[Monitor] = [CpuMonitor(), MemoryMonitor()]
    kind = device.split(":", 1)[0]
    if kind == "cuda":
        from .nvml import NvmlMonitor, NvmlUnavailable, load_nvml

        try:
            monitors.append(NvmlMonitor(nvml=load_nvml(), cuda_indices=cuda_indices(device)))
        except NvmlUnavailable as exc:
            monitors.append(UnavailableMonitor("gpu", exc.reason))
    elif kind == "neuron":
        import shutil

        from .neuron import NeuronMonitor

        if shutil.which("neuron-monitor") is None:
            monitors.append(UnavailableMonitor(
                "neuroncore", "neuron-monitor not found: the Neuron tools (aws-neuronx-tools) "
                              "are not installed"))
        else:
            monitors.append(NeuronMonitor())
    return monitors


def cuda_indices(device: str) -> Optional[List[int]]:
    """The CUDA devices a run on ``device`` uses, as this process numbers them (None: all)."""
    _, _, rest = device.partition(":")
    if rest.isdigit() or not rest:
        return [int(rest or 0)]
    from ..backends.cuda import visible_devices

    visible = visible_devices()
    return None if visible is None else list(range(len(visible)))


def poll_all(monitors: Sequence[Monitor]) -> List[tuple]:
    """``[(monitor name, [readings])]``; a monitor that raises reads as absent, with the reason."""
    groups = []
    for monitor in monitors:
        try:
            rows = list(monitor.poll())
        except Exception as exc:  # a broken monitor must not take a run or a view down
            rows = [Reading(monitor.name, None, f"monitor failed: {exc}")]
        groups.append((monitor.name, rows))
    return groups
