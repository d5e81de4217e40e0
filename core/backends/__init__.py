"""Device backends, found by the ``device`` name a preset or ``--device`` gives.

A device name is a kind and an optional index (``cpu``, ``fake``, later ``cuda:1``); the kind
names a backend class by its import path, so that a copy process imports exactly the class the
planner checked against, and naming a device never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Dict, Type

from ..errors import UserError
from .base import Artifact, Backend, DeviceFacts, Lane, Option, PreparedModel

#: device kind -> "module:Class" (absolute import paths).
_REGISTRY: Dict[str, str] = {
    "cpu": "latency_tui.core.backends.cpu:CpuBackend",
    "fake": "latency_tui.core.backends.fake:FakeBackend",
    "cuda": "latency_tui.core.backends.cuda:CudaBackend",
    "neuron": "latency_tui.core.backends.neuron:NeuronBackend",
}

__all__ = [
    "Artifact", "Backend", "DeviceFacts", "Lane", "Option", "PreparedModel", "devices",
    "backend_class", "backend_path", "check_device", "device_kind", "register", "load_class",
]


def devices() -> tuple:
    """The device kinds this version can run."""
    return tuple(_REGISTRY)


def device_kind(name: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``."""
    return name.split(":", 1)[0].strip()


def check_device(name: str, *, what: str = "device") -> str:
    """Return ``name`` if it is a device this version can run, else raise ``UserError``."""
    kind = device_kind(name)
    if kind in _REGISTRY:
        _, colon, index = name.partition(":")
        if colon and kind in ("cpu", "fake", "neuron"):
            raise UserError(f"{what} {name!r}: the {kind} device takes no index")
        if colon and not (index.isdigit() or index == "all"):
            raise UserError(f"{what} {name!r}: give {kind}, {kind}:N (a GPU index) or "
                            f"{kind}:all (copy i on device i mod n)")
        return name
    raise UserError(f"{what} {name!r}: unknown device (choose from {', '.join(_REGISTRY)})")


def backend_path(name: str) -> str:
    """The ``module:Class`` of the backend for device ``name``."""
    return _REGISTRY[device_kind(check_device(name))]


def backend_class(name: str) -> Type[Backend]:
    return load_class(backend_path(name))


def load_class(path: str) -> Type[Backend]:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def register(kind: str, path: str) -> None:
    """Add a backend (``"module:Class"``) under a device kind: for plug-ins and tests."""
    _REGISTRY[kind] = path
