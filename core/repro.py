"""Reproducibility: what a session needs to be run again and compared fairly, recorded once
per run in ``session.host["reproducibility"]``; replaying a session's plan
(``latency-tui run --replay SESSION.json``); and the cost of a configuration's inferences.

Versions come from package metadata (torch is never imported for its version), drivers from
``/sys`` and ``/proc``, the instance type from the DMI files (never from the network metadata
service), and the git commit of the working directory from ``git`` with a short timeout.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .errors import UserError
from .measurement import ConfigResult
from .noise import host_noise_facts
from .presets import Preset, parse_preset
from .session import PathLike, Session, load_session
from .source import file_hash
from .specs import InputSpec, RunPlan

#: Distributions whose versions are recorded when installed (the Neuron ones included).
PACKAGES = (
    "latency-tui", "torch", "transformers", "numpy", "textual", "rich", "psutil", "tokenizers",
    "safetensors", "accelerate", "torchvision", "optimum", "nvidia-ml-py", "pynvml",
    "torch-neuron", "torch-neuronx", "neuronx-cc", "neuron-cc", "libneuronxla",
    "neuronx-distributed", "aws-neuronx-runtime-discovery", "transformers-neuronx",
)
GIT_TIMEOUT_S = 2.0
DMI = "sys/devices/virtual/dmi/id"
#: ``run`` flags (argparse destinations) that would change which configurations a replay
#: runs: refused with ``--replay``. The rest (how long, where to save, the price) apply.
REPLAY_FIXED = {
    "run_preset": "--preset", "preset": "--preset", "model": "--model", "device": "--device",
    "batch_sizes": "--batch-sizes", "copies": "--copies", "workers": "--workers",
    "copy_mode": "--copy-mode", "mode": "--mode", "rate": "--rate", "arrivals": "--arrivals",
    "search": "--search", "p99_ms": "--p99-ms", "p50_ms": "--p50-ms",
    "max_batch": "--max-batch", "max_memory_mb": "--max-memory-mb",
}


def _read(root: str, relative: str) -> Optional[str]:
    try:
        with open(os.path.join(root, relative), encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def package_versions(names: tuple = PACKAGES) -> Dict[str, str]:
    """``{distribution: version}`` of those installed (read once per process)."""
    from importlib import metadata

    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except Exception:
            continue
    return found


def driver_versions(root: str = "/") -> Dict[str, str]:
    """The Neuron driver (``/sys/module/neuron/version``) and the NVIDIA kernel module
    (``/proc/driver/nvidia/version``), where loaded."""
    out = {}
    neuron = _read(root, "sys/module/neuron/version")
    if neuron:
        out["neuron"] = neuron
    nvidia = _read(root, "proc/driver/nvidia/version") or ""
    for word in nvidia.splitlines()[0].split() if nvidia else ():
        if word[:1].isdigit() and "." in word:
            out["nvidia"] = word
            break
    return out


def instance_facts(root: str = "/") -> Dict[str, str]:
    """The machine as its firmware names it; ``instance_type`` on EC2 (the product name)."""
    facts = {key: value for key in ("sys_vendor", "board_vendor", "product_name")
             if (value := _read(root, f"{DMI}/{key}"))}
    vendors = " ".join(facts.get(k, "") for k in ("sys_vendor", "board_vendor"))
    if "Amazon" in vendors and facts.get("product_name"):
        facts["instance_type"] = facts["product_name"]
    return facts


def git_commit(cwd: Optional[PathLike] = None, *, git: str = "git",
               timeout: float = GIT_TIMEOUT_S) -> Optional[Dict[str, Any]]:
    """As pytest-benchmark's ``commit_info``: the commit id, its time, the branch (None when
    detached), whether tracked files differ from it (``dirty``; untracked files do not count)
    and the project (the top folder's name). None outside a repository, without git, or when
    git does not answer in time; git never writes (no index refresh)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}

    def ask(*args: str) -> Optional[List[str]]:
        try:
            done = subprocess.run([git, *args], cwd=str(cwd or os.getcwd()), env=env,
                                  capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        return done.stdout.splitlines() if done.returncode == 0 else None

    head = ask("rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD")
    if not head or len(head) < 3:
        return None
    status = ask("status", "--porcelain", "--untracked-files=no")
    when = ask("log", "-1", "--format=%cI")
    return {"id": head[1], "time": when[0] if when else None,
            "branch": None if head[2] == "HEAD" else head[2],
            "dirty": None if status is None else bool(status),
            "project": os.path.basename(head[0])}


def model_facts(plan: RunPlan) -> Dict[str, Any]:
    """The model source and the SHA-256 of each file it names (the model, its pre- and
    postprocess); a ``module:attr`` already imported here is hashed by its module's file."""
    out: Dict[str, Any] = {"source": plan.model.source}
    for key in ("source", "preprocess", "postprocess"):
        source = getattr(plan.model, key, None)
        if not source:
            continue
        digest, where = _hash(source)
        if digest:
            prefix = "" if key == "source" else f"{key}_"
            out[f"{prefix}file"], out[f"{prefix}sha256"] = where, digest
    return out


def _hash(source: str) -> tuple:
    """(SHA-256, path) of the file ``source`` names, or (None, None)."""
    try:
        digest = file_hash(source)
        if digest:
            head = source.rpartition(":")[0]
            path = source[len("torchscript:"):] if source.startswith("torchscript:") else \
                head if head.endswith(".py") else source
            return digest, path
        module = sys.modules.get(source.partition(":")[0]) if ":" in source else None
        path = getattr(module, "__file__", None)
        if path and os.path.isfile(path) and "-packages" not in path:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest(), path
    except OSError:
        pass
    return None, None


def reproducibility(plan: RunPlan, *, root: str = "/",
                    cwd: Optional[PathLike] = None) -> Dict[str, Any]:
    """``session.host["reproducibility"]``."""
    return {
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "packages": dict(package_versions()),
        "drivers": driver_versions(root),
        "model": model_facts(plan),
        "git": git_commit(cwd),
        "instance": instance_facts(root),
    }


def run_facts(plan: RunPlan, host: Mapping[str, Any]) -> Dict[str, Any]:
    """What the engine adds to its ``RunStarted`` host facts: ``noise`` (governor, turbo,
    notes) and ``reproducibility``. Gathered on the engine's thread (git is a subprocess with
    a timeout; hashing reads the model's files), never on a UI's, and on the host that runs
    the engine; a failure is recorded, never worth a run."""
    facts: Dict[str, Any] = {}
    try:
        facts["noise"] = host_noise_facts(load_average=host.get("load_average"),
                                          cpus=host.get("logical_cpus"))
        facts["reproducibility"] = reproducibility(plan)
    except Exception as exc:
        facts["reproducibility"] = {"error": str(exc)}
    return facts


def replay_facts(replay_of: Mapping[str, Any],
                 now: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """``session.host["replay_of"]``: the original, with what differs between its
    ``reproducibility`` record and this run's (``now``)."""
    original = dict(replay_of)
    before = original.pop("reproducibility", None) or {}
    original["differences"] = differences(before, now or {})
    return original


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> List[str]:
    """What changed between two ``reproducibility`` records, one line each."""
    lines = []

    def pick(record: Mapping[str, Any], *keys: str) -> Any:
        for key in keys:
            record = record.get(key) if isinstance(record, Mapping) else None
        return record

    packages = set(pick(before, "packages") or {}) | set(pick(after, "packages") or {})
    for name in sorted(packages):
        a, b = pick(before, "packages", name), pick(after, "packages", name)
        if a != b:
            lines.append(f"{name} {a or 'absent'} -> {b or 'absent'}")
    for label, keys in (("python", ("python", "version")), ("model file", ("model", "sha256")),
                        ("git commit", ("git", "id")), ("instance type",
                                                        ("instance", "instance_type")),
                        ("neuron driver", ("drivers", "neuron")),
                        ("nvidia driver", ("drivers", "nvidia"))):
        a, b = pick(before, *keys), pick(after, *keys)
        if a != b:
            lines.append(f"{label} {str(a)[:12] if a else 'unknown'} -> "
                         f"{str(b)[:12] if b else 'unknown'}")
    if pick(after, "git", "dirty"):
        lines.append("the working directory has uncommitted changes")
    return lines


# -- replay ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Replay:
    """A session's last run, as a preset to run again."""

    path: Path
    preset: Preset
    original: Session
    run_id: Optional[int]

    @property
    def price_per_hour(self) -> Optional[float]:
        """The hourly price the original was costed at, if it was."""
        prices = [r.details.get("price_per_hour_usd") for r in self.original.results]
        return next((p for p in prices if isinstance(p, (int, float))), None)

    def reference(self) -> Dict[str, Any]:
        """For the recorder (``replay_of``): which session and run, and its reproducibility."""
        return {"session": str(self.path), "run": self.run_id, "created": self.original.created,
                "reproducibility": self.original.host.get("reproducibility") or {}}


def load_replay(path: PathLike, given: Mapping[str, Any]) -> Replay:
    """The preset that ``path``'s last run recorded; ``given`` (the command's arguments by
    destination) must not name what would change its configurations (``REPLAY_FIXED``)."""
    clash = sorted({flag for dest, flag in REPLAY_FIXED.items() if given.get(dest) is not None})
    if clash:
        raise UserError(f"{clash[0]}: not with --replay, which runs the configurations the "
                        "session recorded (--duration, --samples, --warmup-max, --timeout, "
                        "--early-stop, --json and --price-per-hour may be given)")
    session = load_session(path)
    run = session.runs[-1] if session.runs else {}
    recorded = run.get("preset") if isinstance(run.get("preset"), dict) else session.preset
    if not recorded or not isinstance(recorded.get("model"), dict):
        raise UserError(f"--replay {path}: the session recorded no plan to replay")
    where = f"--replay {path}: its recorded preset"
    text = preset_toml(recorded)
    preset = parse_preset(text, name=str(recorded.get("name") or "replay"), path=None,
                          origin="replay", where=where)
    return Replay(Path(path), preset, session, run.get("id"))


def preset_toml(recorded: Mapping[str, Any]) -> str:
    """A TOML preset from a plan as a session records it (``plan.build_plan``'s ``recorded``),
    read back by ``parse_preset`` so that every field is checked as a preset's would be.
    Inputs at their defaults are left out, so that a preset reader of fewer fields still
    reads it."""
    lines = []
    for key in ("name", "description"):
        if recorded.get(key):
            lines.append(f"{key} = {_toml(recorded[key])}")
    defaults = json.loads(json.dumps(asdict(InputSpec()), default=list))
    inputs = {k: v for k, v in (recorded.get("inputs") or {}).items() if defaults.get(k, v) != v
              or k not in defaults}
    for section, table in (("model", recorded.get("model")), ("inputs", inputs),
                           ("run", recorded.get("run")), ("device", recorded.get("device")),
                           ("warmup", recorded.get("warmup")), ("search", recorded.get("search"))):
        if not isinstance(table, dict) or (not table and section not in ("model", "run")):
            continue
        lines.append(f"[{section}]")
        lines.extend(f"{_key(k)} = {_toml(v)}" for k, v in table.items() if v is not None)
    return "\n".join(lines) + "\n"


def _key(key: Any) -> str:
    return json.dumps(str(key), ensure_ascii=False)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        if any(v is None for v in value):
            raise UserError(f"--replay: a recorded list holds a null ({list(value)!r})")
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise UserError(f"--replay: cannot replay a recorded value {value!r}")


# -- cost --------------------------------------------------------------------------------------

def cost_per_million(price_per_hour: float, samples_per_s: float) -> Optional[float]:
    """US dollars per million inferences (samples) at ``price_per_hour``, as NeuronPerf
    reported it: the hour's price over the samples served in an hour."""
    if not samples_per_s or samples_per_s <= 0 or price_per_hour is None:
        return None
    return price_per_hour / 3600.0 / samples_per_s * 1e6


def with_cost(result: ConfigResult, price_per_hour: Optional[float]) -> ConfigResult:
    """``result`` with ``details["cost_per_million_usd"]`` (and the price it assumed) when a
    price is known and the configuration served anything."""
    if price_per_hour is None or result.throughput is None:
        return result
    cost = cost_per_million(price_per_hour, result.throughput.samples_per_s)
    if cost is None:
        return result
    return replace(result, details={**result.details, "price_per_hour_usd": price_per_hour,
                                    "cost_per_million_usd": cost})
