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


def preprocess(*inputs):
    """A preprocess step: takes the inputs as the model would (NeuronPerf's convention: a tuple
    spread) and hands them on as a tuple."""
    return inputs


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


def env_probe():
    """A plain callable that records, once per copy process, the environment the process
    started with (/proc/self/environ is fixed at exec, before any Python import) and what the
    process saw when the model loaded."""
    import json
    import os
    import sys

    probe_dir = os.environ.get("LATENCY_TUI_PROBE_DIR")
    if probe_dir:
        with open("/proc/self/environ", "rb") as handle:
            initial = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        record = {
            "at_exec": initial.get(b"LATENCY_TUI_FAKE_COPY", b"").decode(),
            "at_load": os.environ.get("LATENCY_TUI_FAKE_COPY"),
            "torch_imported": "torch" in sys.modules,
        }
        with open(os.path.join(probe_dir, f"copy-{os.getpid()}.json"), "w") as handle:
            json.dump(record, handle)
    return (lambda: None), ()


def linear_latency(batch, copy, worker, i):
    """A fake-device handler: 0.2 ms + 0.1 ms per input of the batch."""
    return 0.2 + 0.1 * batch


def fails_at_batch_4(batch, copy, worker, i):
    """A fake-device handler for a model that cannot take batch 4 (as one out of memory)."""
    if batch == 4:
        raise RuntimeError("out of memory at batch 4")
    return 0.5


def exits_in_factory():
    """A factory that calls sys.exit(): the configuration fails; latency-tui does not exit."""
    import sys

    sys.exit(0)


def parses_the_command_line():
    """A factory that parses the command line, as scripts do: it must not see latency-tui's."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=4)
    parser.parse_args()
    return (lambda: None), ()


def fails_with_markup():
    """A model whose error message holds Rich markup and a terminal escape sequence; its first
    call (the planner's trial call) succeeds, so that the run's configurations fail."""
    calls = [0]

    def infer():
        calls[0] += 1
        if calls[0] > 1:
            raise RuntimeError("cannot open [/data/models] \x1b[2J\x1b]0;pwned\x07 [bold red]")

    return infer, ()


def hangs_in_forward():
    """A plain callable that hangs after a few calls, as a stuck device call would."""
    import threading

    calls = [0]

    def infer():
        calls[0] += 1
        if calls[0] > 60:
            threading.Event().wait()

    return infer, ()


def hangs_at_batch_1(batch, copy, worker, i):
    """A fake-device handler whose batch-1 inferences hang after a while (batch 2 is fine)."""
    if batch == 1 and i > 50:
        import threading

        threading.Event().wait()
    return 0.5


def slow_at_batch_2(batch, copy, worker, i):
    """A fake-device handler: quick at batch 1, 200 ms an inference at batch 2, so that a run
    finishes its first configuration at once and stays in its second."""
    return 1.0 if batch == 1 else 200.0


def hangs_at_batch_2(batch, copy, worker, i):
    """A fake-device handler: batch 1 runs; batch 2 hangs once measuring has begun."""
    if batch == 2 and i > 30:
        import threading

        threading.Event().wait()
    return 1.0


def raises_markup(batch, copy, worker, i):
    """A fake-device handler whose inference fails with markup and an escape sequence."""
    raise RuntimeError("[/bold] cannot open [/data] \x1b[31mred")


def chatty():
    """A plain callable that prints on every call, to stdout and stderr."""
    import sys

    def infer():
        print("model says hello")
        print("model warns", file=sys.stderr)

    return infer, ()


def sleeps_in_load():
    """A factory that takes a minute to load, as a large model on a slow disk or a hub model
    without network does: stop and quit must not wait for it."""
    import time

    time.sleep(60)
    return (lambda: None), ()


def hangs_in_warmup(batch, copy, worker, i):
    """A fake-device handler whose fourth call (still in warm-up) takes a minute."""
    return 60_000.0 if i == 3 else 1.0
