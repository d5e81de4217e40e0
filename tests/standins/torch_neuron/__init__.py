"""A stand-in for AWS's torch-neuron (inf1), for tests on machines with no Neuron device: its
``trace`` has the real signature and delegates to ``torch.jit.trace``, and it records what it
was asked (compiler arguments) and the NeuronCores its process was given."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from record import record  # noqa: E402

__version__ = "1.13.1.2.0+standin"
record("torch_neuron", "import")


def trace(func, example_inputs, compiler_args=None, dynamic_batch_size=False, **kwargs):
    import torch

    if os.environ.get("LATENCY_TUI_STANDIN_FAIL_TRACE"):
        raise RuntimeError("neuron-cc failed: unsupported operator (stand-in)")
    record("torch_neuron", "trace", compiler_args=list(compiler_args or []),
           shapes=[list(t.shape) for t in example_inputs])
    with torch.no_grad():
        return torch.jit.trace(func, example_inputs)
