"""The CUDA backend's logic, on a machine with no GPU: device names and placement, the lanes and
their events through the real engine (on a stand-in accelerator), the trace cache, the
synchronisation self-check, out-of-memory handling, and the clear refusal of CUDA here."""

from __future__ import annotations

import contextlib
import threading
import time
import types

import pytest

from fake_accel import FakeAccel, FakeStream
from helpers import fake_plan
from latency_tui.core.backends import check_device
from latency_tui.core.backends.accel import Accel
from latency_tui.core.backends.cuda import COMPILE_MODES, REMAPPED, CudaBackend, device_index
from latency_tui.core.checks import sync_check
from latency_tui.core.engine import Engine
from latency_tui.core.errors import ConfigurationError, UserError
from latency_tui.core.stats import summarize


def cuda_plan(**options):
    plan = fake_plan(model="builtin:mlp", device_name="cpu", duration_s=0.3, **options)
    return plan


def engine_on(plan, accel, options=None, device="cuda"):
    def factory(config):
        return CudaBackend(options or {}, device, accel=accel)

    events = []
    return Engine(plan, events.append, backend_factory=factory), events


@pytest.mark.parametrize("device, copy, count, expected", [
    ("cuda", 3, 4, 0), ("cuda:2", 0, 4, 2), ("cuda:all", 5, 4, 1), ("cuda:all", 2, 2, 0),
])
def test_each_copy_finds_its_gpu(device, copy, count, expected, monkeypatch):
    monkeypatch.delenv(REMAPPED, raising=False)
    assert device_index(device, copy, count) == expected


def test_a_process_copy_sees_its_gpu_as_cuda_0(monkeypatch):
    monkeypatch.delenv(REMAPPED, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    env = CudaBackend.process_env("cuda:all", {}, 4, 8)
    assert env == {"CUDA_VISIBLE_DEVICES": "1", REMAPPED: "1"}
    monkeypatch.setenv(REMAPPED, "1")
    assert device_index("cuda:3", 0) == 0


def visible_to_copies(device, copies):
    return [CudaBackend.process_env(device, {}, i, copies)["CUDA_VISIBLE_DEVICES"]
            for i in range(copies)]


@pytest.mark.parametrize("parent, device, copies, expected", [
    ("2,3,5", "cuda:all", 4, ["2", "3", "5", "2"]),  # the parent's GPUs, not physical 0-2
    ("2,3,5", "cuda:1", 2, ["3", "3"]),
    ("2,3,5", "cuda", 1, ["2"]),
    (" 7 , 4 ", "cuda:all", 2, ["7", "4"]),
    ("GPU-aaaa-1111,GPU-bbbb-2222", "cuda:all", 3,
     ["GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-aaaa-1111"]),  # UUIDs pass through as written
    ("MIG-cccc,1", "cuda:0", 1, ["MIG-cccc"]),
    ("6,-1,3", "cuda:all", 2, ["6", "6"]),  # CUDA stops reading at -1
])
def test_process_copies_map_through_the_parents_visible_devices(parent, device, copies,
                                                                expected, monkeypatch):
    monkeypatch.delenv(REMAPPED, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", parent)
    assert visible_to_copies(device, copies) == expected
    env = CudaBackend.process_env(device, {}, 0, copies)
    assert env[REMAPPED] == "1"


def test_without_a_visible_list_copies_get_the_physical_index(monkeypatch):
    monkeypatch.delenv(REMAPPED, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_to_copies("cuda:2", 2) == ["2", "2"]


def test_a_gpu_beyond_the_parents_visible_list_fails_that_configuration(monkeypatch):
    monkeypatch.delenv(REMAPPED, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(ConfigurationError, match="no GPU 4 in CUDA_VISIBLE_DEVICES"):
        CudaBackend.process_env("cuda:4", {}, 0, 1)


@pytest.mark.parametrize("name, ok", [("cuda", True), ("cuda:0", True), ("cuda:all", True),
                                      ("cuda:x", False), ("cuda:", False), ("cpu:1", False)])
def test_device_names(name, ok):
    if ok:
        assert check_device(name) == name
    else:
        with pytest.raises(UserError):
            check_device(name)


@pytest.mark.parametrize("options, message", [
    ({"compile": "jit"}, "not one of eager, trace, compile, graph"),
    ({"precision": "fp8"}, "not one of fp32, fp16, bf16"),
    ({"channels_last": 1}, "is not a bool"),
    ({"streams": 2}, "unknown for the cuda device"),
])
def test_cuda_options_are_checked_when_planning(options, message):
    with pytest.raises(UserError, match=message):
        CudaBackend.check_options(options)


def test_cuda_on_a_cpu_only_torch_says_why():
    import torch

    if getattr(torch.version, "cuda", None) is not None and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    reason = CudaBackend.unavailable({}, "cuda")
    assert reason and ("CPU-only build" in reason or "no NVIDIA driver" in reason)


def test_every_worker_has_its_own_stream_and_waits_on_its_own_event():
    accel = FakeAccel()
    engine, events = engine_on(cuda_plan(copies=(2,), workers=(2,)), accel)
    (result,) = engine.run()
    assert result.status == "finished", result.error
    assert len(accel.streams) == 4  # one per lane: 2 copies x 2 workers
    assert "device.synchronize" not in accel.calls  # never the whole device
    # One wait per inference, warm-up included, each on its lane's end event.
    assert accel.calls["event.synchronize"] >= result.samples
    assert result.device_latency is not None and result.device_latency.count == result.samples
    assert result.device_latency["p50"] < result.latency["p50"]
    assert result.details["device_memory"][0]["peak_allocated_mb"] == 12.5
    assert not [w for w in result.warnings if "host time" in w]  # device 90 % of host: fine


def test_trace_compiles_once_per_batch_size_and_reuses_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    plan = cuda_plan(batch_sizes=(1, 4))
    first, _ = engine_on(plan, FakeAccel(), {"compile": "trace"})
    results = first.run()
    assert [r.status for r in results] == ["finished", "finished"], [r.error for r in results]
    cached = list((tmp_path / "latency-tui" / "cache" / "cuda").glob("*.pt"))
    assert len(cached) == 2  # one per batch size
    again, events = engine_on(plan, FakeAccel(), {"compile": "trace"})
    results = again.run()
    assert all(r.details["compile_s"] == 0.0 for r in results)  # taken from the cache
    other, _ = engine_on(cuda_plan(batch_sizes=(1,)), FakeAccel(),
                         {"compile": "trace", "precision": "bf16", "cast": "cast"})
    (result,) = other.run()
    assert result.status == "finished", result.error
    assert len(list(cached[0].parent.glob("*.pt"))) == 3  # another precision, another key


@pytest.mark.parametrize("host_ms, device_ms, words", [
    (1.0, 0.95, None),
    (0.1, 1.0, "returned before the work finished"),
    (5.0, 1.0, "try CUDA graphs"),
    (0.06, 0.02, None),  # 3x, but only 40 us of overhead: not worth a word
])
def test_the_synchronisation_self_check(host_ms, device_ms, words):
    host = summarize([int(host_ms * 1e6)] * 100)
    device = summarize([int(device_ms * 1e6)] * 100)
    warnings = sync_check(host, device)
    assert (words is None and warnings == []) or (words and words in warnings[0])


class LoggingAccel(FakeAccel):
    """The stand-in accelerator, keeping the order of what happened (not only the counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.log = []

    def reset_peak(self, device):
        super().reset_peak(device)
        self.log.append("reset_peak")

    def empty_cache(self):
        super().empty_cache()
        self.log.append("empty_cache")


def torch_oom(message):
    import torch

    kind = getattr(torch.cuda, "OutOfMemoryError", None)  # a RuntimeError on older torch
    return kind(message) if kind is not None else RuntimeError(message)


class OomAtBatch(CudaBackend):
    """The CUDA backend whose model runs out of device memory at one batch size only."""

    def __init__(self, options, device, accel, too_big):
        super().__init__(options, device, accel=accel)
        self.too_big = too_big

    def load(self, artifact, source, *, copy_index, threads):
        prepared = super().load(artifact, source, copy_index=copy_index, threads=threads)
        if artifact.batch_size == self.too_big:
            log = self.accel.log

            def hog(*args, **kwargs):
                log.append(f"oom at batch {artifact.batch_size}")
                raise torch_oom("CUDA out of memory. Tried to allocate 40.00 GiB")

            prepared.module = hog
        return prepared


def test_out_of_memory_fails_that_configuration_empties_the_cache_and_the_next_one_runs():
    accel = LoggingAccel()
    plan = cuda_plan(batch_sizes=(1, 64, 8))
    results = Engine(plan, lambda e: None,
                     backend_factory=lambda config: OomAtBatch({}, "cuda", accel, 64)).run()
    assert [r.status for r in results] == ["finished", "failed", "finished"], \
        [r.error for r in results]
    assert [r.error_kind for r in results] == [None, "out_of_memory", None]
    assert "CUDA out of memory" in results[1].error
    # The cache is emptied after the failure, before the next configuration starts ...
    oom = accel.log.index("oom at batch 64")
    assert "empty_cache" in accel.log[oom:]
    assert accel.log[oom:].index("empty_cache") < accel.log[oom:].index("reset_peak")
    # ... and that configuration is not poisoned: it measures like the one before the failure.
    assert results[2].samples > 0 and results[2].device_latency is not None
    assert results[2].details["device_memory"][0]["peak_allocated_mb"] == 12.5


def test_the_fake_device_raises_torchs_out_of_memory_type():
    plan = fake_plan(batch_sizes=(64,), fail_on="infer", fail_after=5, fail_as="out_of_memory",
                     duration_s=0.2)
    (result,) = Engine(plan, lambda e: None).run()
    assert result.status == "failed" and result.error_kind == "out_of_memory"
    assert "CUDA out of memory" in result.error


def test_the_generic_api_is_used_where_torch_has_it():
    calls = []

    class Legacy:  # torch 1.13: no torch.Stream, torch.Event or torch.accelerator
        cuda = types.SimpleNamespace(
            Stream=lambda device: calls.append(("cuda.Stream", device)) or "s",
            Event=lambda enable_timing: calls.append(("cuda.Event", enable_timing)) or "e",
            stream=lambda s: calls.append(("cuda.stream", s)) or "ctx",
            synchronize=lambda d: calls.append(("cuda.synchronize", d)))

    legacy = Accel(Legacy)
    assert not legacy.generic
    legacy.stream(0), legacy.event(0), legacy.on_stream("s"), legacy.synchronize(0)
    assert [c[0] for c in calls] == ["cuda.Stream", "cuda.Event", "cuda.stream",
                                     "cuda.synchronize"]
    import torch

    assert Accel(torch).generic == all(hasattr(torch, n) for n in ("Stream", "Event",
                                                                   "accelerator"))


def test_inputs_of_any_shape_are_placed_field_by_field():
    # A dataclass input (the tabular blog's) must reach the GPU whole, not stay on the host.
    import dataclasses

    torch = pytest.importorskip("torch")
    from latency_tui.core.backends.cuda import to_device

    @dataclasses.dataclass
    class Rows:
        ids: object
        values: object
        label: str = "rows"

    placed = to_device([Rows(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4))],
                       torch.device("cpu"), torch.float16)
    assert placed[0].ids.dtype == torch.long and placed[0].values.dtype == torch.float16
    assert placed[0].label == "rows"


class _Stream:
    """torch 2.6's torch.Stream: no context manager."""

    device = "dev"


class _EnterableStream(_Stream):
    """torch 2.7's: its own context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _generic_torch(calls):
    return types.SimpleNamespace(
        Stream=_Stream, Event=object,
        accelerator=types.SimpleNamespace(
            current_stream=lambda device: calls.append(("current_stream", device)) or "before",
            set_stream=lambda stream: calls.append(("set_stream", stream))),
        cuda=types.SimpleNamespace(stream=lambda s: calls.append(("cuda.stream", s)) or "ctx"))


def test_a_stream_without_a_context_manager_is_entered_the_way_its_torch_allows():
    """torch 2.6 has torch.accelerator but its torch.Stream is no context manager: every CUDA
    configuration failed there with 'does not support the context manager protocol'."""
    calls = []
    torch26 = _generic_torch(calls)
    stream = _Stream()
    assert Accel(torch26).on_stream(stream) == "ctx" and calls == [("cuda.stream", stream)]
    enterable = _EnterableStream()
    assert Accel(torch26).on_stream(enterable) is enterable  # 2.7 and later: the stream itself
    calls.clear()
    with Accel(torch26, kind="neuron").on_stream(stream):  # another accelerator on torch 2.6
        assert calls == [("current_stream", "dev"), ("set_stream", stream)]
    assert calls[-1] == ("set_stream", "before")


@pytest.mark.parametrize("mode, cache, grad_off", [
    ("graph", False, "inference_mode"), ("eager", True, "inference_mode"),
    ("compile", True, "no_grad"), ("trace", True, "inference_mode"),
])
def test_the_lane_context_keeps_graphs_off_autocasts_cache_and_compile_off_inference_mode(
        monkeypatch, mode, cache, grad_off):
    """A CUDA graph captured while autocast caches its weight casts replays memory that is freed
    when the capture's autocast ends; torch.compile has failed on inference tensors."""
    import torch

    from latency_tui.core.backends.cuda import StreamPrepared

    seen = {}
    monkeypatch.setattr(torch, "autocast", lambda kind, dtype, cache_enabled: seen.update(
        cache=cache_enabled) or contextlib.nullcontext())
    for name in ("no_grad", "inference_mode"):
        monkeypatch.setattr(torch, name, lambda name=name: seen.update(grad=name)
                            or contextlib.nullcontext())
    accel = FakeAccel()
    accel.kind = "cuda"
    prepared = StreamPrepared(lambda x: x, torch.ones(1), "cpu", accel,
                              {"compile": mode, "precision": "fp16"})
    with prepared._context(FakeStream("cpu"))():
        pass
    assert seen == {"cache": cache, "grad": grad_off}


@pytest.mark.parametrize("options, message", [
    ({"compile": "compile", "compile_mode": "reduce-overhead"}, "records CUDA graphs per thread"),
    ({"compile": "compile", "compile_mode": "max-autotune"}, "records CUDA graphs per thread"),
    ({"compile": "eager", "compile_mode": "default"}, "applies to compile = \"compile\""),
])
def test_compile_modes_that_would_record_graphs_while_timed_are_refused(options, message):
    with pytest.raises(UserError, match=message):
        CudaBackend.check_options(options)
    CudaBackend.check_options({"compile": "compile", "compile_mode": "max-autotune-no-cudagraphs"})


def test_graph_and_compile_copies_set_up_one_at_a_time_in_a_process():
    """One CUDA graph capture at a time per process, with no other CUDA work during it, and
    Dynamo is not thread-safe: thread copies in those modes load, capture and warm up in turn."""
    guards = {mode: CudaBackend({"compile": mode}, "cuda").setup_guard()
              for mode in COMPILE_MODES}
    assert hasattr(guards["graph"], "acquire") and hasattr(guards["compile"], "acquire")
    assert not hasattr(guards["eager"], "acquire") and not hasattr(guards["trace"], "acquire")
    # The copies of one configuration share its backend, and so its lock; another
    # configuration's lock is its own, which a copy hung in a device call cannot hold.
    backend = CudaBackend({"compile": "graph"}, "cuda")
    assert backend.setup_guard() is backend.setup_guard()
    assert backend.setup_guard() is not guards["graph"]


def test_the_engine_holds_the_backends_setup_guard_around_each_copys_setup():
    from latency_tui.core.backends.fake import FakeBackend

    active, most, both = [0], [0], threading.Barrier(2, timeout=5)

    class Guarded(FakeBackend):
        def __init__(self, *args, lock=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.lock = lock

        def setup_guard(self):
            return self.lock or contextlib.nullcontext()

        def load(self, *args, **kwargs):
            active[0] += 1
            most[0] = max(most[0], active[0])
            if self.lock is None:
                both.wait()  # unguarded, the two copies do meet here
            else:
                time.sleep(0.1)
            active[0] -= 1
            return super().load(*args, **kwargs)

    for lock in (None, threading.Lock()):
        most[0] = 0
        plan = fake_plan(copies=(2,), duration_s=0.2)
        engine = Engine(plan, lambda e: None, backend_factory=lambda config, lock=lock: Guarded(
            dict(config.device_options), config.device, lock=lock))
        (result,) = engine.run()
        assert result.status == "finished", result.error
        assert most[0] == (1 if lock else 2)


def test_a_copy_on_another_gpu_traces_its_own_and_one_that_sees_the_same_index_reuses_it(
        tmp_path, monkeypatch):
    """A trace keeps the device it ran on among its constants: a copy on cuda:1 must not run
    the parent's cuda:0 trace; a process copy that sees its GPU as cuda:0 takes the parent's."""
    import torch

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    accel = FakeAccel()
    accel.device = lambda index: torch.device("cpu", index)
    backend = CudaBackend({"compile": "trace"}, "cuda:all", accel=accel)
    monkeypatch.setattr("latency_tui.core.backends.cuda.gpu_count", lambda: 2)
    from latency_tui.core.source import ModelSource
    from latency_tui.core.specs import InputSpec, ModelSpec

    source = ModelSource(ModelSpec("builtin:mlp"), InputSpec())
    artifact = backend.compile(source, 2)
    assert artifact.details["traced_on"] == "cpu:0"
    traced = []
    real = backend._trace
    monkeypatch.setattr(backend, "_trace", lambda *a: traced.append(str(a[3])) or real(*a))
    backend.load(artifact, source, copy_index=0, threads=None).close()
    assert traced == []  # copy 0 runs on the traced device
    backend.load(artifact, source, copy_index=1, threads=None).close()
    assert traced == ["cpu:1"]
    files = sorted(p.name.rsplit("-", 1)[-1] for p in
                   (tmp_path / "latency-tui" / "cache" / "cuda").glob("*.pt"))
    assert files == ["cuda0.pt", "cuda1.pt"]


def test_graph_mode_captures_every_distinct_batch_and_replays_them_in_turn(monkeypatch):
    """A dataset's distinct batches: a single graph would have replayed the first batch only
    while the session said every batch was used."""
    import torch

    from latency_tui.core.backends.cuda import StreamPrepared

    seen, capturing, graphs = [], [False], []

    class Graph:
        def __init__(self):
            self.batch = None
            graphs.append(self)

        def pool(self):
            return ("pool of", graphs.index(self))

        def replay(self):
            seen.append(("replay", self.batch))

    @contextlib.contextmanager
    def capture(graph, pool=None, stream=None):
        graph.pool_given, capturing[0] = pool, True
        yield
        capturing[0] = False

    def model(x):
        if capturing[0]:
            graphs[-1].batch = int(x[0])

    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    accel = FakeAccel()
    accel.kind = "cuda"
    batches = [torch.full((1,), float(i)) for i in range(3)]
    lane = StreamPrepared(model, batches, "cpu", accel, {"compile": "graph"}).lane(0)
    assert [g.batch for g in graphs] == [0, 1, 2]
    assert [g.pool_given for g in graphs] == [None, ("pool of", 0), ("pool of", 0)]
    for _ in range(6):
        lane.infer()
    assert seen == [("replay", i % 3) for i in range(6)]


def test_trace_with_keyword_inputs_is_refused_when_planning(tmp_path):
    """BERT and Hugging Face models take keywords, which a trace cannot: every configuration
    failed at run time with error_kind compile; it is bad input, said before anything runs."""
    import textwrap

    from latency_tui.core.api import build_plan, check_inputs
    from latency_tui.core.presets import parse_preset

    (tmp_path / "kw.py").write_text(textwrap.dedent("""
        import torch

        class Keywords(torch.nn.Module):
            def forward(self, x):
                return x * 2
    """))
    text = textwrap.dedent(f"""
        [model]
        source = "{tmp_path / 'kw.py'}:Keywords"
        [inputs]
        as_kwargs = true
        [[inputs.tensors]]
        name = "x"
        shape = [4]
        [run]
        device = "cuda"
        [device]
        compile = "{{mode}}"
    """)
    preset = parse_preset(text.replace("{mode}", "trace"), name="kw", path=None, origin="file",
                          where="test")
    with pytest.raises(UserError, match=r'\[device\] of cuda: compile = "trace" takes '
                                        r"positional inputs; this model takes keywords"):
        check_inputs(build_plan(preset))
    eager = parse_preset(text.replace("{mode}", "eager"), name="kw", path=None, origin="file",
                         where="test")
    assert check_inputs(build_plan(eager)).configs
