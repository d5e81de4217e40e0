"""A backend's setup guard (CUDA graphs and torch.compile: thread copies set up one at a time):
a copy given up on while it waits never loads, a copy queued behind another's setup keeps the
cold first call's timeout, and a first call that compiles is cold in every configuration."""

from __future__ import annotations

import threading
import time

from helpers import fake_plan
from latency_tui.core.backends.cuda import CudaBackend
from latency_tui.core.backends.fake import FakeBackend
from latency_tui.core.backends.neuron import NeuronBackend
from latency_tui.core.engine import Engine


class Guarded(FakeBackend):
    """The fake device, its copies set up one at a time (a lock per configuration, as CUDA's),
    recording which copies began to load."""

    loads: list = []
    compiles_first = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()

    def setup_guard(self):
        return self.lock

    def first_call_compiles(self):
        return self.compiles_first

    def load(self, artifact, source, *, copy_index, threads):
        type(self).loads.append(copy_index)
        return super().load(artifact, source, copy_index=copy_index, threads=threads)


def engine(plan, kind=Guarded):
    kind.loads = []
    return Engine(plan, lambda event: None, backend_factory=lambda config: kind(
        dict(config.device_options), config.device))


def test_copies_given_up_on_while_they_wait_for_the_guard_never_load():
    """Stopped while copy 0 loads (1.5 s, holding the guard): the three copies queued behind it
    went on to load, and capture, one after another for seconds after the engine had moved on,
    beside the next configuration's work."""
    plan = fake_plan(copies=(4,), duration_s=5.0, load_ms=1500.0)
    run = engine(plan)
    results = []
    thread = threading.Thread(target=lambda: results.extend(run.run()))
    began = time.monotonic()
    thread.start()
    time.sleep(0.5)
    run.stop()
    thread.join(30)
    assert not thread.is_alive() and results[0].status == "cancelled"
    time.sleep(max(0.0, began + 4.0 - time.monotonic()))  # past when copies 1-2 would load
    assert Guarded.loads == [0]


def test_a_copy_queued_behind_anothers_setup_keeps_the_cold_first_calls_timeout():
    """Copy 1 waits while copy 0 loads the model: its own first call is still cold (1.5 s,
    within --first-timeout 5), not held to --timeout 1 as a warm one is."""
    plan = fake_plan(copies=(2,), duration_s=0.3, cold_ms=1500.0,
                     overrides={"timeout_s": 1.0, "first_timeout_s": 5.0})
    (result,) = engine(plan).run()
    assert result.status == "finished", result.error
    assert Guarded.loads == [0, 1]


def test_a_first_call_that_compiles_is_cold_in_every_configuration():
    """With torch.compile each configuration's copy compiles in its first call, although the
    model was loaded for the one before: held to --timeout, a batch sweep's second
    configuration failed."""
    class Compiling(Guarded):
        compiles_first = True

    plan = fake_plan(batch_sizes=(1, 2), duration_s=0.3, cold_ms=1500.0,
                     overrides={"timeout_s": 1.0, "first_timeout_s": 5.0})
    results = engine(plan, Compiling).run()
    assert [r.status for r in results] == ["finished", "finished"], [r.error for r in results]
    warm = engine(plan).run()  # the same without: the second configuration's first call is warm
    assert [r.status for r in warm] == ["finished", "failed"]
    assert warm[1].error_kind == "timeout"


def test_which_backends_compile_in_their_first_call():
    assert CudaBackend({"compile": "compile"}, "cuda").first_call_compiles()
    assert not CudaBackend({"compile": "graph"}, "cuda").first_call_compiles()
    assert NeuronBackend({"native_compile": True}).first_call_compiles()
    assert not NeuronBackend({}).first_call_compiles()
