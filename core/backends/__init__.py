"""Device backends, found by the ``device`` name a preset or ``--device`` gives.

Backends are imported only when asked for, so naming a device never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional

from ..errors import UserError
from .base import Backend, DeviceFacts, PreparedModel

#: device name -> "module:class", relative to this package.
_REGISTRY = {
    "cpu": "cpu:CpuBackend",
    "fake": "fake:FakeBackend",
}
#: Devices on the road map, so that asking for one says so rather than "unknown".
_PLANNED = {
    "cuda": "the CUDA backend is not in this version yet (planned: NVIDIA GPUs with NVML)",
    "neuron": "the Neuron backend is not in this version yet (planned: inf1/inf2/trn1)",
}

DEVICES = tuple(_REGISTRY)

__all__ = ["Backend", "DeviceFacts", "PreparedModel", "DEVICES", "get_backend", "check_device"]


def check_device(name: str, *, what: str = "device") -> str:
    """Return ``name`` if it is a device this version can run, else raise ``UserError``."""
    if name in _REGISTRY:
        return name
    if name in _PLANNED:
        raise UserError(f"{what} {name!r}: {_PLANNED[name]}")
    raise UserError(f"{what} {name!r}: unknown device (choose from {', '.join(DEVICES)})")


def get_backend(name: str, options: Optional[Dict[str, Any]] = None) -> Backend:
    check_device(name)
    module_name, class_name = _REGISTRY[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(options)
