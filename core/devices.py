"""Every backend this host could run, and for each one it cannot, why: what ``latency-tui
devices`` prints. Read from NVML and neuron-ls where possible; torch is asked only when NVML
cannot say (it takes seconds to import)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .host import cpu_model, usable_cpus


def describe() -> List[Dict[str, Any]]:
    """One entry per device kind: ``{"kind", "available", "reason"?, "devices": [...]}``."""
    return [_cpu(), _cuda(), _neuron()]


def _cpu() -> Dict[str, Any]:
    import os

    return {"kind": "cpu", "available": True, "devices": [
        {"name": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable_cpus()}]}


def _cuda() -> Dict[str, Any]:
    from .monitors.nvml import NvmlUnavailable, gpu_facts

    try:
        gpus = gpu_facts()
    except NvmlUnavailable as exc:
        gpus, nvml_reason = [], exc.reason
    else:
        nvml_reason = None
    from .backends.cuda import cuda_unavailable

    reason = cuda_unavailable("cuda")
    entry: Dict[str, Any] = {"kind": "cuda", "available": reason is None, "devices": gpus}
    if reason:
        entry["reason"] = reason
    if nvml_reason:
        entry["monitor"] = f"no GPU monitor: {nvml_reason}"
    if not gpus and reason is None:  # torch sees GPUs NVML could not list
        import torch

        entry["devices"] = [{"index": i, "cuda_index": i, "name": torch.cuda.get_device_name(i)}
                            for i in range(torch.cuda.device_count())]
    for gpu in gpus:
        gpu["cuda_index"] = cuda_index_of(gpu)
    return entry


def cuda_index_of(gpu: Dict[str, Any]) -> Optional[int]:
    """The N of ``cuda:N`` that names NVML's GPU ``gpu`` in this process (its place in
    CUDA_VISIBLE_DEVICES, by index or UUID), or None when this process cannot see it."""
    from .backends.cuda import visible_devices

    visible = visible_devices()
    if visible is None:
        return gpu.get("index")
    uuid = str(gpu.get("uuid") or "")
    for position, entry in enumerate(visible):
        if (entry.isdigit() and int(entry) == gpu.get("index")) or (
                entry.startswith("GPU-") and uuid.startswith(entry)):
            return position
    return None


def _neuron() -> Dict[str, Any]:
    from .backends.neuron import NeuronBackend, installed_api, instance_type
    from .neuron.tools import neuron_ls

    devices, ls_reason = neuron_ls()
    entry: Dict[str, Any] = {
        "kind": "neuron", "api": installed_api(), "instance_type": instance_type(),
        "devices": [{"index": d.index, "cores": d.nc_count, "core_ids": list(d.core_ids),
                     "memory_gb": round(d.memory_bytes / 1e9, 1) if d.memory_bytes else None,
                     "held_by": [{"pid": p.pid, "command": p.command} for p in d.processes]}
                    for d in devices],
    }
    reason = NeuronBackend.unavailable({}, "neuron")
    entry["available"] = reason is None
    if reason:
        entry["reason"] = reason
    elif ls_reason:
        entry["reason"] = ls_reason
    return entry
