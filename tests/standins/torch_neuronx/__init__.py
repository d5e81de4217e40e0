"""A stand-in for AWS's torch-neuronx trace API (inf2 / trn1): see torch_neuron's."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from record import record  # noqa: E402

__version__ = "2.9.0.2.0+standin"
record("torch_neuronx", "import")


def trace(func, example_inputs, compiler_args=None, inline_weights_to_neff=True, **kwargs):
    import torch

    record("torch_neuronx", "trace", compiler_args=list(compiler_args or []),
           shapes=[list(t.shape) for t in example_inputs])
    with torch.no_grad():
        return torch.jit.trace(func, example_inputs)
