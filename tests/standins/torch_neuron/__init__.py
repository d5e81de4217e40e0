"""A stand-in for AWS's torch-neuron (inf1), for tests on machines with no Neuron device: its
``trace`` has the real signature and delegates to ``torch.jit.trace``, and it records what it
was asked (compiler arguments) and the NeuronCores its process was given. Like the real one it
registers a ``neuron::`` op when imported, and with ``LATENCY_TUI_STANDIN_LOAD_ERROR`` set, a
copy's ``torch.jit.load`` fails with that message, as the runtime's does when a core is taken.
Its version is in the dist-info beside it (importlib.metadata reads it without importing)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from record import record  # noqa: E402

__version__ = "1.13.1.2.0+standin"
record("torch_neuron", "import")


def _register_ops():
    """The real package registers the ``neuron::`` ops its compiled TorchScript calls (so it
    must be imported before ``torch.jit.load``); this one registers ``neuron::forward_1`` (the
    identity), so that a test can save a model that loads only after this import."""
    import torch

    try:
        library = torch.library.Library("neuron", "DEF")
        library.define("forward_1(Tensor x) -> Tensor")
        library.impl("forward_1", lambda x: x.clone(), "CPU")
    except Exception:  # registered already, or a torch without torch.library
        return None
    return library


_LIBRARY = _register_ops()  # kept: the ops go when it does

if os.environ.get("LATENCY_TUI_STANDIN_LOAD_ERROR") and os.environ.get("NEURON_RT_VISIBLE_CORES"):
    # The runtime failing to take a copy's cores: the real one fails inside torch.jit.load.
    import torch

    def _failing_load(*_args, **_kwargs):
        raise RuntimeError(os.environ["LATENCY_TUI_STANDIN_LOAD_ERROR"])

    torch.jit.load = _failing_load


def trace(func, example_inputs, compiler_args=None, dynamic_batch_size=False, **kwargs):
    import torch

    if os.environ.get("LATENCY_TUI_STANDIN_FAIL_TRACE"):
        raise RuntimeError("neuron-cc failed: unsupported operator (stand-in)")
    record("torch_neuron", "trace", compiler_args=list(compiler_args or []),
           shapes=[list(t.shape) for t in example_inputs])
    with torch.no_grad():
        return torch.jit.trace(func, example_inputs)
