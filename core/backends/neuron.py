"""The Neuron backend: AWS Inferentia and Trainium, one model copy per NeuronCore (or group).

Three generations, one backend (the ``api`` option, ``auto`` by default):

- ``torch-neuron`` (inf1, torch 1.13.1, Python 3.9-3.10): ``torch_neuron.trace`` compiles the
  model to TorchScript; a copy imports ``torch_neuron`` *before* ``torch.jit.load`` (otherwise
  ``Unknown builtin op: neuron::forward``) and the call is synchronous: the host clock is the
  latency.
- ``torch-neuronx`` (inf2 / trn1): ``torch_neuronx.trace``, the same way.
- ``native`` (trn2 / trn3, torch-neuronx 2.13+): a ``neuron`` device in torch; the model moves
  there (or goes through ``torch.compile(backend="neuron")``) and is timed as a CUDA model is,
  with streams and events.

Traced models are compiled once per batch size, in a spawned process of their own (the engine's
process never touches the Neuron runtime: a fork after it starts fails with ``NRT_STATE_CHILD``,
and a core once taken stays taken), saved under the user's cache (keyed by the package's version
and the compiler arguments too) and listed in a model index (NeuronPerf's shape, and more). Copies
are processes, each bound to its cores by ``NEURON_RT_VISIBLE_CORES`` before its interpreter
starts (copy i of pipeline size p: cores p*i..p*i+p-1). Nothing here has run on Neuron hardware:
docs/neuron-checklist.md lists what awaits it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigurationError, UserError, one_line
from .base import Artifact, Backend, DeviceFacts, Option, PreparedModel, stable_hash
from .cpu import CpuPrepared

APIS = ("auto", "torch-neuron", "torch-neuronx", "native")
_MODULE = {"torch-neuron": "torch_neuron", "torch-neuronx": "torch_neuronx",
           "native": "torch_neuronx"}
#: The machine's own name for its model: an EC2 instance's type. Read, never fetched (no network).
DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
INSTALL = ("the Neuron packages come from AWS's own repository, not PyPI: pip install "
           "--extra-index-url https://pip.repos.neuron.amazonaws.com {package}")


def instance_type(report: Any = None) -> Optional[str]:
    """The EC2 instance type ('inf1.xlarge') from the machine's DMI data, else from a
    neuron-monitor report's ``instance_info`` (``report``, a ``MonitorReport``), else None.
    No network: the EC2 metadata service is never asked."""
    try:
        text = Path(DMI_PRODUCT_NAME).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    if "." in text and text.split(".")[0][:3] in ("inf", "trn"):
        return text
    return getattr(report, "instance_type", None) or None


def package_for(instance: Optional[str]) -> str:
    family = (instance or "").split(".")[0]
    if family == "inf1":
        return "torch-neuron (with torch 1.13.1 on Python 3.9 or 3.10)"
    if family in ("trn2", "trn3"):
        return "torch-neuronx 2.13 or later (the native neuron device)"
    if family in ("inf2", "trn1"):
        return "torch-neuronx"
    return "torch-neuron on inf1, torch-neuronx on inf2 / trn1 / trn2"


def installed_api() -> Optional[str]:
    """Which Neuron package is importable here, as an ``api`` value (None: none is)."""
    if importlib.util.find_spec("torch_neuronx") is not None:
        try:
            from importlib.metadata import version

            major, minor = (int(x) for x in version("torch-neuronx").split(".")[:2])
            return "native" if (major, minor) >= (2, 13) else "torch-neuronx"
        except Exception:
            return "torch-neuronx"
    if importlib.util.find_spec("torch_neuron") is not None:
        return "torch-neuron"
    return None


def package_version(api: str) -> Optional[str]:
    """The installed version of ``api``'s package, from its metadata: no import (the engine's
    process must not start the Neuron runtime); None when it has none."""
    try:
        from importlib.metadata import version

        return version(_MODULE[api].replace("_", "-"))
    except Exception:
        return None


def visible_cores(copy_index: int, pipeline_size: int, first_core: int = 0) -> str:
    """``NEURON_RT_VISIBLE_CORES`` of copy ``copy_index``: its own core, or its group; copy 0
    starts at ``first_core``."""
    first = first_core + copy_index * pipeline_size
    return str(first) if pipeline_size == 1 else f"{first}-{first + pipeline_size - 1}"


def _compile_main(conn: Any, job: Dict[str, Any]) -> None:
    """The compile process: load the model on the host, trace it for one batch size, save it."""
    try:
        from ..source import ModelSource

        source = ModelSource(job["model"], job["inputs"])
        module = __import__(_MODULE[job["api"]])
        model, inputs = source.load().module, source.batch(job["batch_size"])
        if isinstance(inputs, dict):
            inputs = tuple(inputs.values())
        started = time.perf_counter()
        traced = module.trace(model, inputs, compiler_args=list(job["compiler_args"]))
        import torch

        temporary = f"{job['path']}.{os.getpid()}.tmp"
        torch.jit.save(traced, temporary)
        os.replace(temporary, job["path"])
        shapes = [list(t.shape) for t in inputs if hasattr(t, "shape")]
        conn.send(("ok", time.perf_counter() - started, shapes,
                   getattr(module, "__version__", None)))
    except BaseException as exc:
        from ..errors import format_traceback

        conn.send(("failed", one_line(exc), format_traceback(exc)))
    finally:
        conn.close()


class NeuronBackend(Backend):
    name = "neuron"
    compiles = True
    copy_modes = ("process",)
    PLACEMENT_OPTIONS = ("first_core",)
    OPTIONS = {
        "api": Option(str, "auto, torch-neuron (inf1), torch-neuronx (inf2 / trn1) or native "
                           "(trn2 / trn3)", choices=APIS),
        "compiler_args": Option(list, "arguments for the Neuron compiler, a list of strings"),
        "pipeline_size": Option(int, "NeuronCores per copy", minimum=1),
        "first_core": Option(int, "the NeuronCore copy 0 takes; the others follow it", minimum=0),
        "native_compile": Option(bool, "native device: torch.compile(backend='neuron') rather "
                                       "than eager"),
    }

    def __init__(self, options: Optional[Mapping[str, Any]] = None,
                 device: Optional[str] = None) -> None:
        super().__init__(options, device)
        self._compiler: Any = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> Dict[str, Any]:
        checked = super().check_options(options)
        args = checked.get("compiler_args", [])
        if not all(isinstance(a, str) for a in args):
            raise UserError("device option 'compiler_args': must be a list of strings")
        return checked

    @property
    def api(self) -> str:
        chosen = self.options.get("api", "auto")
        return (installed_api() or "torch-neuron") if chosen == "auto" else chosen

    @classmethod
    def unavailable(cls, options: Mapping[str, Any], device: str) -> Optional[str]:
        installed = installed_api()
        chosen = options.get("api", "auto")
        if installed is None or (chosen != "auto" and importlib.util.find_spec(
                _MODULE[chosen]) is None):
            wanted = package_for(instance_type())
            return "no Neuron package is installed: " + INSTALL.format(package=wanted)
        from ..neuron.tools import neuron_ls

        devices, reason = neuron_ls()  # no device is a reason too
        return reason or (None if devices else "no Neuron device (neuron-ls lists none)")

    @classmethod
    def plan_check(cls, options: Mapping[str, Any], device: str, copies: int) -> Optional[str]:
        """Refused when planning (where neuron-ls can tell): more copies than cores, or a core
        they would take held by another process (copy i of pipeline size p takes cores
        f+p*i..f+p*i+p-1 from ``first_core`` f: see ``visible_cores``), saying where they fit."""
        from ..neuron.tools import core_ranges, held_cores, holders, neuron_ls

        devices, reason = neuron_ls()
        if reason or not devices:
            return None  # unavailable() says why, when the run starts
        size, held = options.get("pipeline_size", 1), held_cores(devices)
        start = options.get("first_core", 0)
        cores = sorted(core for d in devices for core in d.core_ids)
        needed, free = copies * size, core_ranges(c for c in cores if c not in held) or "none"
        what = f"{copies} copies x {size} cores need {needed} NeuronCores"
        fits = next((f for f in range(0, len(cores) - needed + 1, size)
                     if not any(c in held for c in range(f, f + needed))), None)
        hint = "" if fits is None else f" (first_core = {fits} in the preset's [device] fits)"
        if needed > len(cores):
            return f"{what}; this host has {len(cores)}" + (
                f", {core_ranges(held)} held by {holders(held.values())} (free: {free})"
                if held else "")
        if start + needed > len(cores):
            return (f"{what} from first_core {start} ({core_ranges(range(start, start + needed))}"
                    f"); this host has {len(cores)} (0-{len(cores) - 1}){hint}")
        clash = [core for core in range(start, start + needed) if core in held]
        if clash:
            return (f"{what} ({core_ranges(range(start, start + needed))}: copies are placed "
                    f"from core {start}), and {core_ranges(clash)} "
                    f"{'is' if len(clash) == 1 else 'are'} held by "
                    f"{holders(held[c] for c in clash)}; free cores: {free}{hint}")
        return None

    @classmethod
    def units(cls, options: Mapping[str, Any], device: str) -> Optional[int]:
        from ..neuron.tools import neuron_ls

        devices, reason = neuron_ls()
        if reason or not devices:
            return None
        cores = sum(d.nc_count for d in devices) - options.get("first_core", 0)
        return max(1, cores // options.get("pipeline_size", 1))

    @classmethod
    def process_env(cls, device: str, options: Mapping[str, Any], copy_index: int, copies: int
                    ) -> Dict[str, str]:
        return {"NEURON_RT_VISIBLE_CORES": visible_cores(
            copy_index, options.get("pipeline_size", 1), options.get("first_core", 0))}

    def first_call_compiles(self) -> bool:
        return bool(self.options.get("native_compile"))

    def facts(self) -> DeviceFacts:
        return DeviceFacts(device=self.device, name=f"AWS Neuron ({self.api})",
                           timing=("streams and events on the neuron device" if self.api == "native"
                                   else "host clock; a traced Neuron model's call is synchronous"),
                           details={"api": self.api, "instance_type": instance_type(),
                                    "visible_cores": os.environ.get("NEURON_RT_VISIBLE_CORES"),
                                    **self.options})

    # -- compile once per batch size ---------------------------------------------------------
    def cache_key(self, source: Any, batch_size: int) -> str:
        """The base key (model, inputs, batch size, options) and what the compiled model also
        depends on: the package that compiles it, its version, and the compiler arguments."""
        api = self.api
        return stable_hash({"base": super().cache_key(source, batch_size), "api": api,
                            "package": package_version(api),
                            "compiler_args": list(self.options.get("compiler_args", []))})

    def compile(self, source: Any, batch_size: int) -> Artifact:
        api, key = self.api, self.cache_key(source, batch_size)
        spec = source.spec.source
        if api == "native":
            return Artifact(key=key, backend=self.name, batch_size=batch_size,
                            details={"api": api})
        if spec.endswith((".pt", ".ts", ".torchscript")) or spec.startswith("torchscript:"):
            path = spec[len("torchscript:"):] if spec.startswith("torchscript:") else spec
            return Artifact(key=key, backend=self.name, batch_size=batch_size, path=path,
                            cached=True, details={"api": api, "precompiled": True})
        if spec.endswith(".json"):
            return self._from_neuronperf_index(Path(spec), key, batch_size)
        index = ModelIndex(self._cache_dir() / stable_hash(source.fingerprint()))
        entry = index.find(key)
        if entry is not None and entry.get("status") == "ok" and Path(entry["path"]).is_file():
            return Artifact(key=key, backend=self.name, batch_size=batch_size,
                            path=entry["path"], cached=True, details={"api": api})
        path = index.folder / f"model-b{batch_size}-{key}.pt"
        compile_s, shapes, version = self._compile_in_child(source, batch_size, str(path))
        index.record(key, {
            "filename": path.name, "path": str(path), "batch_size": batch_size,
            "pipeline_size": self.options.get("pipeline_size", 1), "compile_s": compile_s,
            "status": "ok", "input_shapes": shapes, "source": spec,
            "file_sha256": source.fingerprint().get("file_sha256"),
            "compiler_args": list(self.options.get("compiler_args", [])),
            "tool_versions": {"api": api, "package": package_version(api) or version}, "key": key,
        }, model_name=spec)
        return Artifact(key=key, backend=self.name, batch_size=batch_size, path=str(path),
                        compile_s=compile_s, details={"api": api})

    def _cache_dir(self) -> Path:
        from ..paths import data_dir

        return data_dir() / "cache" / "neuron"

    def _compile_in_child(self, source: Any, batch_size: int, path: str
                          ) -> Tuple[float, List[Any], Optional[str]]:
        import multiprocessing

        from ..procs import Child

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
        job = {"model": source.spec, "inputs": source.input_spec, "api": self.api,
               "batch_size": batch_size, "path": path,
               "compiler_args": tuple(self.options.get("compiler_args", []))}
        self._compiler = Child(_compile_main, (send, job), name="latency-tui-neuron-compile")
        self._compiler.start()
        send.close()
        try:
            outcome = receive.recv()
        except EOFError:
            self._compiler.join(2.0)
            raise ConfigurationError(f"the compile process died (exit code "
                                     f"{self._compiler.exitcode})", "compile") from None
        finally:
            self._compiler.stop(grace_s=5.0)
        if outcome[0] != "ok":
            raise ConfigurationError(f"compiling for batch {batch_size} failed: {outcome[1]}",
                                     "compile", outcome[2])
        return outcome[1], outcome[2], outcome[3]

    def _from_neuronperf_index(self, index_path: Path, key: str, batch_size: int) -> Artifact:
        """A model NeuronPerf compiled: its index names one file per batch size."""
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            configs = index["model_configs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{index_path}: not a NeuronPerf model index "
                                     f"({one_line(exc)})", "compile") from None
        for config in configs:
            if config.get("batch_size") == batch_size and config.get("status", "ok") == "ok":
                path = (index_path.parent / config["filename"]).resolve()
                return Artifact(key=key, backend=self.name, batch_size=batch_size,
                                path=str(path), cached=True,
                                details={"api": self.api, "neuronperf_index": str(index_path)})
        sizes = sorted({c.get("batch_size") for c in configs})
        raise ConfigurationError(f"{index_path}: no compiled model for batch {batch_size} "
                                 f"(it has {sizes})", "compile")

    def close(self) -> None:
        if self._compiler is not None:
            self._compiler.stop(grace_s=0.0)

    # -- in each copy ------------------------------------------------------------------------
    def load(self, artifact: Artifact, source: Any, *, copy_index: int,
             threads: Optional[int]) -> PreparedModel:
        import torch

        api = self.api
        if api == "native":
            return self._load_native(source, artifact.batch_size, torch)
        # The runtime package registers the neuron:: ops torch.jit.load needs: import it first.
        try:
            __import__(_MODULE[api])
        except ImportError as exc:
            raise ConfigurationError(f"a compiled Neuron model needs {_MODULE[api]} to load: "
                                     + INSTALL.format(package=package_for(instance_type())),
                                     "error") from exc
        try:
            module = torch.jit.load(artifact.path)
        except Exception as exc:
            raise ConfigurationError(_load_failure(exc, api), "error") from exc
        return CpuPrepared(module, source.batches(artifact.batch_size))

    def _load_native(self, source: Any, batch_size: int, torch: Any) -> PreparedModel:
        __import__("torch_neuronx")
        from .accel import Accel
        from .cuda import StreamPrepared, to_device

        accel = Accel(torch, kind="neuron")
        device = accel.device(0)
        module = source.module_for_copy(0).to(device).eval()
        if self.options.get("native_compile"):
            module = torch.compile(module, backend="neuron")
        return StreamPrepared(module, to_device(source.batch(batch_size), device), device, accel,
                              {})


def _load_failure(exc: BaseException, api: str) -> str:
    """What a failed load means, in the user's words."""
    text = one_line(exc)
    if "NERR_RESOURCE_NC" in text or "already in use" in text.lower():
        from ..neuron.tools import held_cores, holders, neuron_ls, parse_core_ranges

        visible = os.environ.get("NEURON_RT_VISIBLE_CORES", "")
        held = {c: p for c, p in held_cores(neuron_ls()[0]).items() if p.pid != os.getpid()}
        mine = [p for c, p in held.items() if c in parse_core_ranges(visible)]
        who = f" (neuron-ls lists {holders(mine or held.values())} on its device)" if held else ""
        return (f"NeuronCore {visible or '?'} of this copy is already in use by another "
                f"process{who}: {text}")
    if "Unknown builtin op" in text and "neuron" in text:
        return (f"{text} the model was compiled for Neuron, and the package that compiled it "
                f"must be imported before torch.jit.load: api = {api!r} imported "
                f"{_MODULE[api]} (torch-neuron compiles for inf1, torch-neuronx for inf2 / trn1)")
    if "could not be initialized" in text or "cannot be initialized" in text:
        return f"{text} (no Neuron device visible to this process)"
    return text


class ModelIndex:
    """The compile cache's index for one model: NeuronPerf's fields (``model_name``,
    ``model_configs`` with ``filename``, ``batch_size``, ``pipeline_size``, ``compile_s``,
    ``status``) and ours (the cache key, input shapes, compiler arguments, tool versions)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "model_index.json"

    def _read(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def find(self, key: str) -> Optional[Dict[str, Any]]:
        for entry in self._read().get("model_configs", []):
            if isinstance(entry, dict) and entry.get("key") == key:
                return entry
        return None

    def record(self, key: str, entry: Dict[str, Any], *, model_name: str) -> None:
        data = self._read()
        configs = [c for c in data.get("model_configs", []) if c.get("key") != key]
        configs.append(entry)
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"model_name": model_name, "model_configs": configs},
                                        indent=2), encoding="utf-8")
        os.replace(temporary, self.path)
