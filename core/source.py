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
import itertools
import os
import threading
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Tuple

from .backends.cpu import spread
from .specs import InputSpec, ModelSpec


class ModelSource:
    def __init__(self, spec: ModelSpec, inputs: InputSpec) -> None:
        self.spec = spec
        self.input_spec = inputs
        self._lock = threading.Lock()
        self._loaded: Any = None
        self._error: Optional[BaseException] = None
        self._steps: Optional[Tuple[Optional[Callable], Optional[Callable]]] = None
        self._facts: Dict[int, Dict[str, Any]] = {}

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
                    self._loaded = take_preloaded(self.spec) or load_model(self.spec)
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
        """The inputs of one call at ``batch_size`` (the first of ``batches``)."""
        return self.batches(batch_size)[0]

    def batches(self, batch_size: int) -> List[Any]:
        """The distinct inputs of the calls at ``batch_size`` (a tuple, a dict or one object
        each; more than one for a dataset), built on the host; ``input_facts`` then says what
        they are. Synthetic tensors need no model: a compiled model that must not be loaded
        here (a Neuron one would touch its runtime) can still be given its inputs."""
        from .inputs import build_batches, synthesise

        spec = self.input_spec
        if spec.tensors and not (spec.texts or spec.dataset or spec.texts_file) \
                and self._loaded is None:
            built = [synthesise(spec, batch_size)]
            self._facts[batch_size] = {"kind": "tensors", "batch_size": batch_size,
                                       "distinct_batches": 1}
            return built
        built, facts = build_batches(self.load(), spec, batch_size)
        self._facts[batch_size] = facts
        return built

    def input_facts(self, batch_size: int) -> Dict[str, Any]:
        """What the session records of the inputs built at ``batch_size`` (empty before)."""
        return dict(self._facts.get(batch_size, {}))

    def steps(self) -> Tuple[Optional[Callable[[Any], Any]], Optional[Callable[[Any], Any]]]:
        """The preprocess and postprocess callables (None where the spec has none)."""
        if self._steps is None:
            from .models import load_callable

            spec = self.spec
            pre = load_callable(spec.preprocess, "model.preprocess") if spec.preprocess else None
            post = load_callable(spec.postprocess, "model.postprocess") if spec.postprocess else None
            self._steps = (spread(pre) if pre else None, post)
        return self._steps

    def pipeline(self, batch_size: int) -> Tuple[Optional[Callable[[Any], Any]],
                                                 Optional[Callable[[Any], Any]], Any]:
        """(preprocess, postprocess, raw inputs) as the pipeline loop takes them: preprocess
        takes the inputs by the calling convention (a tuple spread, a dict as keywords) and
        its output is what the model is called with; with a dataset, each call takes the next
        batch."""
        pre, post = self.steps()
        batches = self.batches(batch_size)
        if len(batches) > 1:
            turn = itertools.cycle(batches).__next__
            first = pre

            def pre(_raw: Any) -> Any:  # noqa: F811 - the cycling preprocess
                return first(turn()) if first is not None else turn()
        return pre, post, batches[0]

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


#: A model the planner loaded for its trial call, handed to the engine's first ``ModelSource``
#: of the same spec in this process (one slot: a model is not kept for a run that never comes).
_preloaded: Dict[str, Any] = {}
_preload_lock = threading.Lock()


def preload(spec: ModelSpec, loaded: Any) -> None:
    """Hand ``loaded`` (the model ``spec`` names) to the next load of ``spec`` here."""
    with _preload_lock:
        _preloaded.clear()
        _preloaded[_spec_key(spec)] = loaded


def take_preloaded(spec: ModelSpec) -> Any:
    with _preload_lock:
        return _preloaded.pop(_spec_key(spec), None)


def _spec_key(spec: ModelSpec) -> str:
    from .backends.base import stable_hash

    return stable_hash({"model": asdict(spec), "file_sha256": file_hash(spec.source)})
