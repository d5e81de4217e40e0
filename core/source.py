"""A model spec with its inputs, as a backend's ``compile`` and ``load`` receive it.

Loading is lazy and happens at most once per process: the CPU's identity compile never loads
the model in the engine's process, a Neuron compile does (to trace it), thread copies share one
load (copy 0 runs the loaded module, the others an independent copy of its weights), and each
copy process makes its own ``ModelSource`` from the spec. A failed load is remembered, so that
every configuration reports it without loading again.
"""

from __future__ import annotations

import copy as _copy
import hashlib
import os
import threading
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Tuple

from .specs import InputSpec, ModelSpec


class ModelSource:
    def __init__(self, spec: ModelSpec, inputs: InputSpec) -> None:
        self.spec = spec
        self.input_spec = inputs
        self._lock = threading.Lock()
        self._loaded: Any = None
        self._error: Optional[BaseException] = None
        self._steps: Optional[Tuple[Optional[Callable], Optional[Callable]]] = None

    @property
    def loaded(self) -> Any:
        """The ``LoadedModel`` once loaded here, else None (never loads)."""
        return self._loaded

    def load(self) -> Any:
        """The model, loaded on the first call (a ``UserError`` saying why not is raised again
        on every later call)."""
        with self._lock:
            if self._loaded is None and self._error is None:
                from .models import load_model

                try:
                    self._loaded = load_model(self.spec)
                except BaseException as exc:
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._loaded

    def module_for_copy(self, copy_index: int) -> Any:
        """The module copy ``copy_index`` runs: the loaded one for copy 0, an independent copy of
        its weights for the others (shared when it cannot be copied)."""
        module = self.load().module
        if copy_index == 0:
            return module
        try:
            return _copy.deepcopy(module)
        except Exception:
            return module

    def batch(self, batch_size: int) -> Any:
        """The inputs of one call at ``batch_size`` (a tuple or a dict), built on the host.
        Synthetic tensors need no model: a compiled model that must not be loaded here (a
        Neuron one would touch its runtime) can still be given its inputs."""
        from .inputs import build_inputs, synthesise

        spec = self.input_spec
        if spec.tensors and not spec.texts and self._loaded is None:
            return synthesise(spec, batch_size)
        return build_inputs(self.load(), spec, batch_size)

    def steps(self) -> Tuple[Optional[Callable[[Any], Any]], Optional[Callable[[Any], Any]]]:
        """The preprocess and postprocess callables (None where the spec has none)."""
        if self._steps is None:
            from .models import load_callable

            spec = self.spec
            pre = load_callable(spec.preprocess, "model.preprocess") if spec.preprocess else None
            post = load_callable(spec.postprocess, "model.postprocess") if spec.postprocess else None
            self._steps = (pre, post)
        return self._steps

    @property
    def staged(self) -> bool:
        return bool(self.spec.preprocess or self.spec.postprocess)

    def fingerprint(self) -> Dict[str, Any]:
        """What a compiled artifact depends on: the spec, the inputs and the hash of the file
        a source names (so that an edited model file is compiled again)."""
        return {
            "model": asdict(self.spec), "inputs": asdict(self.input_spec),
            "file_sha256": file_hash(self.spec.source),
        }


def file_hash(source: str) -> Optional[str]:
    """SHA-256 of the file a ``path/file.py:attr`` or TorchScript source names, else None."""
    path = source
    if source.startswith("torchscript:"):
        path = source[len("torchscript:"):]
    elif ":" in source:
        head = source.rpartition(":")[0]
        path = head if head.endswith(".py") else ""
    if not path or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
