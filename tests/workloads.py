"""Models for the engine tests, loaded through the real ``path/to/file.py:attr`` source."""

from __future__ import annotations

from time import perf_counter_ns

BUSY_NS = 200_000


def busy_wait() -> None:
    """Spin for a known time: the workload whose latency the engine must report faithfully."""
    until = perf_counter_ns() + BUSY_NS
    while perf_counter_ns() < until:
        pass


def busy_factory():
    """A factory returning (model, example inputs): a plain callable with no inputs."""
    return busy_wait, ()


def failing_factory():
    raise RuntimeError("weights are corrupt")


def fails_at_batch_8():
    import torch

    class FailsAtBatch8(torch.nn.Module):
        def forward(self, x):
            if x.shape[0] == 8:
                raise ValueError("batch 8 is not supported by this model")
            return x * 2

    return FailsAtBatch8(), (torch.ones(1, 4),)


def count_calls(_output=None):
    """A postprocess step (does a little work so that its time is visible)."""
    return sum(range(50))


def preprocess(raw):
    return raw


def dies_after_a_while():
    """A model whose process dies mid-run, as an out-of-memory kill would end it."""
    import os

    calls = [0]

    def infer():
        calls[0] += 1
        if calls[0] == 500:
            os._exit(3)

    return infer, ()


def slow_factory():
    """A plain callable that takes 20 ms: long enough to interrupt mid-run."""
    import time

    return (lambda: time.sleep(0.02)), ()
