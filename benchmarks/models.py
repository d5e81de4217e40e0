"""Models the benchmarks measure, importable by spawned processes (``benchmarks.models``) and
loadable by the engine as ``benchmarks.models:builtin_mlp``.

This module imports torch at the top (an ``nn.Module`` is what the engine's ``module:attr``
source loads), so import it only where a model is needed.
"""

from __future__ import annotations

from typing import Any, Tuple

from torch import nn

_MLP: Any = None


def builtin_mlp() -> Tuple[nn.Module, Any]:
    """``builtin:mlp`` and its batch-size-1 inputs, loaded once per process and then shared.

    The engine loads ``benchmarks.models:builtin_mlp`` through this factory and the
    torch.utils.benchmark reference times what ``shared_mlp()`` returns: the very same module
    object and input tensors, loaded by the engine's own loaders (``load_model`` and
    ``build_inputs``), so that the two timings differ in method only.
    """
    return shared_mlp()


def shared_mlp() -> Tuple[nn.Module, Any]:
    global _MLP
    if _MLP is None:
        from latency_tui.core.inputs import build_inputs
        from latency_tui.core.models import load_model
        from latency_tui.core.specs import InputSpec, ModelSpec

        loaded = load_model(ModelSpec("builtin:mlp"))
        _MLP = (loaded.module, build_inputs(loaded, InputSpec(), 1))
    return _MLP
