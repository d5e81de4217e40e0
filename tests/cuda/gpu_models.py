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


#: The batch size at which ``memory_hog`` asks the device for more memory than it has.
HOG_BATCH = 64
#: The out-of-memory check's sweep: one that fits, the hog, and another that fits. Another,
#: not the same again: the preset parser drops repeated batch sizes, so (1, HOG_BATCH, 1) would
#: plan two configurations, not three.
OOM_SWEEP = (1, HOG_BATCH, 2)


def memory_hog():
    """A model with small inputs that, at batch ``HOG_BATCH`` and above, allocates a tensor
    twice the GPU's total memory on the device inside ``forward``: torch's own CUDA
    out-of-memory error, raised on the device (the inputs stay far below the engine's host-side
    limit, which would otherwise refuse the configuration before the GPU is ever asked)."""
    import torch

    class Hog(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] >= HOG_BATCH:
                _, total = torch.cuda.mem_get_info(x.device)
                hog = torch.empty(2 * total, dtype=torch.uint8, device=x.device)
                return x + hog[:1].float()
            return x * 2

    return Hog(), (torch.zeros(1, 8),)
