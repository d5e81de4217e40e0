"""The CUDA backend: NVIDIA GPUs through PyTorch, timed on the device itself.

GPU work is asynchronous: a host timer around a launch times the launch. So every worker gets a
lane of its own: its own stream (work of two workers never waits for each other's), a start
and an end event recorded on that stream around each inference, and a wait on the end event
only (never a device-wide synchronize). The host clock is read after that wait, so each sample
keeps both: the host-side latency (what a caller sees) and the device-side one (the events'
elapsed time). Model and inputs are on the device before timing starts; nothing is copied from
the host inside the timed region.

Devices: ``cuda`` (the first GPU), ``cuda:N``, and ``cuda:all`` (copy i on GPU i mod n). Process
copies get ``CUDA_VISIBLE_DEVICES`` from ``process_env`` (so each sees its GPU as cuda:0);
thread copies share one process and address their GPU by index.

Compile modes (the ``compile`` option), per configuration: ``eager``; ``trace`` (TorchScript,
traced once per batch size in the engine's process and cached on disk under the key of the model
source, its file's hash, the batch size, the inputs, the precision, the torch version and the
GPU index it ran on); ``compile`` (``torch.compile``, mode ``compile_mode``; each copy compiles
during its cold first inference, in torch's own cache); ``graph`` (a CUDA graph per lane and
distinct batch, for launch-bound models). Precision ``fp32``, ``fp16`` or ``bf16``, by
``autocast`` or by casting the model and its floating inputs (``cast``); ``channels_last`` for
image models.

Nothing here runs without a GPU; what runs on one is listed in docs/gpu-validation.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
import time
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigurationError, UserError
from .accel import Accel
from .base import Artifact, Backend, DeviceFacts, Lane, Option, PreparedModel
from .cpu import call_with, cycling

REMAPPED = "LATENCY_TUI_CUDA_REMAPPED"
COMPILE_MODES = ("eager", "trace", "compile", "graph")
PRECISIONS = ("fp32", "fp16", "bf16")
#: torch.compile modes that record CUDA graphs: their graph trees are per thread, so each timing
#: thread would record its own while it is timed.
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")
TRACE_TAKES_POSITIONAL = ("compile = \"trace\" takes positional inputs; this model takes keywords "
                          "(use eager, compile or graph)")


def device_index(device: str, copy_index: int, count: Optional[int] = None) -> int:
    """The GPU a copy runs on, as this process numbers them."""
    if os.environ.get(REMAPPED) == "1":
        return 0  # process_env made its one GPU this process's cuda:0
    _, _, rest = device.partition(":")
    if rest == "all":
        return copy_index % max(count or gpu_count(), 1)
    return int(rest) if rest else 0


def visible_devices() -> Optional[List[str]]:
    """This process's ``CUDA_VISIBLE_DEVICES`` as a list (indices or ``GPU-…``/``MIG-…`` UUIDs,
    as written), or None when it is not set. As CUDA reads it, the list ends at a ``-1``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    entries: List[str] = []
    for entry in (v.strip() for v in visible.split(",")):
        if entry.startswith("-"):
            break
        if entry:
            entries.append(entry)
    return entries


def gpu_count() -> int:
    """GPUs visible to this process, read without initialising CUDA where possible."""
    visible = visible_devices()
    if visible is not None:
        return len(visible)
    try:
        from ..monitors.nvml import load_nvml

        nvml = load_nvml()
        nvml.nvmlInit()
        try:
            return int(nvml.nvmlDeviceGetCount())
        finally:
            nvml.nvmlShutdown()
    except Exception:
        pass
    import torch

    return int(torch.cuda.device_count())


def cuda_unavailable(device: str) -> Optional[str]:
    """Why ``device`` cannot be used here (a CPU-only torch, no driver, no such GPU), or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if getattr(torch.version, "cuda", None) is None:
        return (f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
                "from pytorch.org")
    if not torch.cuda.is_available():
        return "no NVIDIA driver or no GPU (torch.cuda.is_available() is False)"
    _, _, rest = device.partition(":")
    if rest and rest != "all":
        if not rest.isdigit():
            return f"{rest!r} is not a GPU index (cuda, cuda:N or cuda:all)"
        count = torch.cuda.device_count()
        if int(rest) >= count:
            return f"there is no GPU {rest} ({count} visible)"
    return None


class StreamPrepared(PreparedModel):
    """A model on a stream-and-event accelerator (CUDA; the native Neuron device too)."""

    def __init__(self, module: Callable[..., Any], inputs: Any, device: Any, accel: Accel,
                 options: Mapping[str, Any]) -> None:
        self.batches = inputs if isinstance(inputs, list) else [inputs]
        self.module, self.inputs, self.device, self.accel = module, self.batches[0], device, accel
        self.options = options
        accel.reset_peak(device)

    def _context(self, stream: Any) -> Callable[[], ContextManager[Any]]:
        torch = self.accel.torch
        precision = self.options.get("precision", "fp32")
        autocast = precision != "fp32" and self.options.get("cast", "autocast") == "autocast"

        mode = self.options.get("compile", "eager")
        # torch.compile has failed on inference tensors (pytorch#90882, #101151): no_grad there.
        grad_off = torch.no_grad if mode == "compile" else torch.inference_mode
        # A graph must not read autocast's cached weight casts: they are freed when the
        # capture's autocast ends, and replays would read reused memory (PyTorch refuses the
        # same in make_graphed_callables).
        cache = mode != "graph"

        @contextlib.contextmanager
        def context() -> Any:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self.accel.on_stream(stream))
                stack.enter_context(grad_off())
                if autocast:
                    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
                    stack.enter_context(torch.autocast(self.accel.kind, dtype=dtype,
                                                       cache_enabled=cache))
                yield
        return context

    def lane(self, worker: int) -> Lane:
        accel = self.accel
        stream = accel.stream(self.device)
        start, end = accel.event(self.device), accel.event(self.device)
        context = self._context(stream)
        calls = [call_with(self.module, batch) for batch in self.batches]
        if self.options.get("compile") == "graph":  # a graph replays its own batch's buffers
            calls = self._capture(calls, stream, context)
        call = cycling(calls)

        def infer() -> None:
            start.record(stream)
            call()
            end.record(stream)

        def device_ns() -> int:
            return int(start.elapsed_time(end) * 1e6)

        def infer_on(inputs: Any) -> Any:
            start.record(stream)
            output = call_with(self.module, inputs)()
            end.record(stream)
            return output

        return Lane(infer, wait=end.synchronize, device_ns=device_ns, infer_on=infer_on,
                    place=functools.partial(to_device, device=self.device), context=context)

    def _capture(self, calls: List[Callable[[], Any]], stream: Any, context: Any
                 ) -> List[Callable[[], Any]]:
        """A CUDA graph of one inference per distinct batch, on this lane's stream: replaying
        one costs one launch. A lane's graphs share one memory pool: they replay one after
        another on its stream, read only their own batch and the weights (outside the pool),
        and nothing reads their outputs."""
        torch = self.accel.torch
        replays: List[Callable[[], Any]] = []
        pool = None
        with context():
            for call in calls:  # warm the allocator and any lazy initialisation first
                for _ in range(3):
                    call()
            self.accel.synchronize(self.device)
            for call in calls:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool, stream=stream):
                    call()
                pool = graph.pool() if pool is None else pool
                replays.append(graph.replay)
        return replays

    def report(self) -> Dict[str, Any]:
        return {key: round(value, 1) for key, value in self.accel.memory(self.device).items()}

    def close(self) -> None:
        self.module = self.inputs = self.batches = None
        self.accel.empty_cache()


class CudaBackend(Backend):
    name = "cuda"
    compiles = True
    OPTIONS = {
        "compile": Option(str, "eager, trace, compile (torch.compile) or graph (CUDA graphs)",
                          choices=COMPILE_MODES),
        "compile_mode": Option(str, "torch.compile's mode: default or max-autotune-no-cudagraphs "
                                    "(the modes that record CUDA graphs are refused)"),
        "precision": Option(str, "fp32, fp16 or bf16", choices=PRECISIONS),
        "cast": Option(str, "autocast, or cast the model and its inputs", choices=("autocast",
                                                                                    "cast")),
        "channels_last": Option(bool, "the model and 4-D inputs in channels-last memory format"),
    }

    def __init__(self, options: Optional[Mapping[str, Any]] = None,
                 device: Optional[str] = None, accel: Optional[Accel] = None) -> None:
        super().__init__(options, device)
        self._accel = accel
        # Held around each thread copy's whole setup (load, lanes, warm-up) in graph and compile
        # modes: one CUDA graph capture at a time per process with no other CUDA work in flight
        # during it, and Dynamo is not thread-safe (pytorch#118260). One per configuration (its
        # copies share this backend), so that a copy hung in a device call cannot hold up the
        # configurations after it.
        self._setup_lock = threading.Lock()

    @property
    def accel(self) -> Accel:
        if self._accel is None:
            import torch

            self._accel = Accel(torch)
        return self._accel

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        checked = super().check_options(options)
        mode = checked.get("compile_mode")
        if mode is not None and checked.get("compile") != "compile":
            raise UserError("device option 'compile_mode': applies to compile = \"compile\" "
                            "(torch.compile) only")
        if mode in GRAPHING_COMPILE_MODES:
            raise UserError(
                f"device option 'compile_mode': {mode!r} records CUDA graphs per thread "
                "(torch.compile's graph trees are thread-local), so every timing thread would "
                "record its own while timed; use compile = \"graph\" for CUDA graphs, or "
                "compile_mode \"default\" or \"max-autotune-no-cudagraphs\"")
        return checked

    @classmethod
    def inputs_problem(cls, options: Mapping[str, Any], inputs: Any) -> Optional[str]:
        if options.get("compile") == "trace" and isinstance(inputs, dict):
            return TRACE_TAKES_POSITIONAL
        return None

    def first_call_compiles(self) -> bool:
        return self.options.get("compile") == "compile"

    def setup_guard(self) -> ContextManager[Any]:
        if self.options.get("compile") in ("graph", "compile"):
            return self._setup_lock
        return contextlib.nullcontext()

    @classmethod
    def unavailable(cls, options: Mapping[str, Any], device: str) -> Optional[str]:
        reason = cuda_unavailable(device)
        if reason is None and options.get("compile") == "compile":
            import torch

            if not hasattr(torch, "compile"):
                return f"compile = \"compile\" needs torch.compile (torch 2.0+; this is " \
                       f"{torch.__version__}): use eager, trace or graph"
        return reason

    @classmethod
    def process_env(cls, device: str, options: Mapping[str, Any], copy_index: int, copies: int
                    ) -> Dict[str, str]:
        """The copy's one GPU as its ``CUDA_VISIBLE_DEVICES``: this process numbers GPUs through
        its own ``CUDA_VISIBLE_DEVICES`` when set (index i is its i-th entry, passed on as
        written, a UUID included), so a copy never lands on a GPU the parent was not given."""
        index = device_index(device, copy_index)
        visible = visible_devices()
        if visible is None:
            return {"CUDA_VISIBLE_DEVICES": str(index), REMAPPED: "1"}
        if index >= len(visible):
            raise ConfigurationError(
                f"{device}: there is no GPU {index} in CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')!r} ({len(visible)} visible)")
        return {"CUDA_VISIBLE_DEVICES": visible[index], REMAPPED: "1"}

    def target(self, copy_index: int) -> Any:
        return self.accel.device(device_index(self.device, copy_index))

    def facts(self) -> DeviceFacts:
        torch = self.accel.torch
        index = device_index(self.device, 0)
        details: Dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                                   "generic_api": self.accel.generic, **self.options}
        try:
            properties = torch.cuda.get_device_properties(index)
            details.update(total_memory_mb=round(properties.total_memory / 1e6),
                           compute_capability=f"{properties.major}.{properties.minor}")
            name = properties.name
        except Exception:
            name = f"cuda:{index}"
        return DeviceFacts(device=self.device, name=name, details=details,
                           timing="CUDA events per worker stream (device time) and the host "
                                  "clock after that stream's event synchronises (host time)")

    def compile(self, source: Any, batch_size: int) -> Artifact:
        mode = self.options.get("compile", "eager")
        key = self.cache_key(source, batch_size)
        if mode != "trace":
            return Artifact(key=key, backend=self.name, batch_size=batch_size,
                            details={"compile": mode})
        device = self.target(0)
        path, compile_s = self._trace(source, batch_size, key, device)
        return Artifact(key=key, backend=self.name, batch_size=batch_size, path=str(path),
                        compile_s=compile_s, cached=compile_s == 0.0,
                        details={"compile": mode, "traced_on": str(device)})

    def _trace(self, source: Any, batch_size: int, key: str, device: Any) -> Tuple[Any, float]:
        """A TorchScript trace on ``device`` and the seconds it took (0 when cached). Cached per
        device index: a trace keeps the device it ran on among its constants (a tensor made
        with ``device=x.device``), so a copy on another index traces its own."""
        from ..paths import data_dir

        torch = self.accel.torch
        index = getattr(device, "index", None) or 0
        path = data_dir() / "cache" / "cuda" / f"{key}-{torch.__version__}-cuda{index}.pt"
        if path.is_file():
            return path, 0.0
        began = time.perf_counter()
        module, inputs = self._placed(source.load().module, source.batch(batch_size), device)
        if isinstance(inputs, dict):
            raise ConfigurationError(TRACE_TAKES_POSITIONAL, "compile")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, inputs)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            torch.jit.save(traced, str(temporary))
            os.replace(temporary, path)
        except ConfigurationError:
            raise
        except Exception as exc:
            from ..errors import one_line

            raise ConfigurationError(f"tracing failed: {one_line(exc)}", "compile") from exc
        return path, max(time.perf_counter() - began, 1e-9)

    def _placed(self, module: Any, inputs: Any, device: Any) -> Any:
        """The model and its inputs on ``device``, in the configured precision and layout."""
        torch = self.accel.torch
        precision = self.options.get("precision", "fp32")
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        cast = dtype is not None and self.options.get("cast", "autocast") == "cast"
        layout = torch.channels_last if self.options.get("channels_last") else None
        if hasattr(module, "to"):
            module = module.to(device)
            if cast:
                module = module.to(dtype)
            if layout is not None:
                module = module.to(memory_format=layout)
        if isinstance(inputs, list):  # a dataset's distinct batches: every one placed now
            return module, [to_device(b, device, dtype if cast else None, layout) for b in inputs]
        placed = to_device(inputs, device, dtype if cast else None, layout)
        return module, placed

    def load(self, artifact: Artifact, source: Any, *, copy_index: int,
             threads: Optional[int]) -> PreparedModel:
        torch = self.accel.torch
        device = self.target(copy_index)
        if artifact.path:
            path = artifact.path
            if artifact.details.get("traced_on") != str(device):  # traced for another index
                path = str(self._trace(source, artifact.batch_size, artifact.key, device)[0])
            module: Any = torch.jit.load(path, map_location=device)
        else:
            module = source.module_for_copy(copy_index)
        module, inputs = self._placed(module, source.batches(artifact.batch_size), device)
        if hasattr(module, "eval"):
            module.eval()
        if self.options.get("compile") == "compile":
            kwargs = {"mode": self.options["compile_mode"]} if "compile_mode" in self.options else {}
            module = torch.compile(module, **kwargs)
        return StreamPrepared(module, inputs, device, self.accel, self.options)


def to_device(inputs: Any, device: Any, dtype: Any = None, layout: Any = None) -> Any:
    """Inputs (a tensor; a tuple, list, dict or dataclass of them) on ``device``; floating
    tensors cast to ``dtype`` and 4-D ones put in ``layout`` when given. Anything else passes
    through."""
    if isinstance(inputs, dict):
        return {k: to_device(v, device, dtype, layout) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(to_device(v, device, dtype, layout) for v in inputs)
    if dataclasses.is_dataclass(inputs) and not isinstance(inputs, type):
        return dataclasses.replace(inputs, **{
            f.name: to_device(getattr(inputs, f.name), device, dtype, layout)
            for f in dataclasses.fields(inputs) if f.init})
    if not hasattr(inputs, "to") or not hasattr(inputs, "dim"):
        return inputs
    out = inputs.to(device)
    if dtype is not None and out.is_floating_point():
        out = out.to(dtype)
    if layout is not None and out.dim() == 4:
        out = out.contiguous(memory_format=layout)
    return out

