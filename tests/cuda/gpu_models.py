"""Models for the GPU checks, loaded by the engine as ``path/to/gpu_models.py:attr``."""

from __future__ import annotations

import os


def sleeper():
    """A kernel of known duration: ``torch.cuda._sleep`` for the cycles the check calibrated
    (``LATENCY_TUI_SLEEP_CYCLES``), with a tiny input so that nothing else takes time."""
    import torch

    cycles = int(os.environ["LATENCY_TUI_SLEEP_CYCLES"])

    class Sleeper(torch.nn.Module):
        def forward(self, x):
            torch.cuda._sleep(cycles)
            return x

    return Sleeper(), (torch.zeros(1, 1),)


def memory_hog():
    """A model whose inputs grow with the batch: a large enough batch runs out of memory."""
    import torch

    class Hog(torch.nn.Module):
        def forward(self, x):
            return x * 2

    return Hog(), (torch.zeros(1, 64, 1024, 1024),)  # 256 MB of float32 per row
