"""Host noise on Neuron: NeuronCores held by processes other than this run's own.

``neuron-ls`` lists, per device, the processes holding it. ``NeuronHolders`` (an event sink that
the engine puts in front of its own: ``held_cores_noted``) reads it twice for each configuration
on the ``neuron`` device: as its copies begin to warm up (loaded: they hold their cores) and once
it has finished; never per sample, nor as measuring begins, and never for another device. It
reads on the engine's thread, never on a UI's (a listing may take its 5 s timeout), and on the
host that runs the engine. A process that is not of this process tree (this process and its
descendants: the engine process under the TUI, the copies) is another's; a pid once seen as ours
stays ours, so that a copy that ended before the second listing is not taken for a stranger.
What was found goes into the result's ``details["neuron_holders"]``, and ``neuron_reasons``
turns it into noise reasons. A missing ``neuron-ls``, no device or an unreadable listing gives
nothing (no figure, no reason), never an error.

neuron-ls says which device a process holds, not which cores: another's cores are named as its
device's cores less those this run's copies were given (copy i of pipeline size p: cores
f+p*i..f+p*i+p-1 from first_core f, see ``backends.neuron.visible_cores``). neuron-monitor's
reports name each runtime's cores, but the monitor keeps only their sums, so they are not used
here.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from .events import ConfigFinished, ConfigStarted, PhaseChanged
from .neuron.tools import NeuronDevice, neuron_ls
from .text import single_line

Listing = Tuple[List[NeuronDevice], Optional[str]]  # what ``neuron_ls`` returns


def own_pids(pid: Optional[int] = None, psutil: Any = None) -> Set[int]:
    """This process (or ``pid``) and its descendants; only the process itself when psutil
    cannot say."""
    pid = os.getpid() if pid is None else pid
    try:
        if psutil is None:
            import psutil
        me = psutil.Process(pid)
        return {pid, *(child.pid for child in me.children(recursive=True))}
    except Exception:
        return {pid}


def foreign_holders(devices: Iterable[NeuronDevice], own: Iterable[int],
                    ours: Iterable[int] = ()) -> Dict[int, Dict[str, Any]]:
    """``{pid: {"pid", "command", "cores"}}`` of the processes not in ``own`` that neuron-ls
    lists on a device: their cores are the device's less ``ours`` (the cores this run's copies
    were given), or all of the device's where that leaves none."""
    own, ours = set(own), set(ours)
    out: Dict[int, Dict[str, Any]] = {}
    for device in devices:
        cores = [c for c in device.core_ids if c not in ours] or list(device.core_ids)
        for process in device.processes:
            if process.pid in own:
                continue
            entry = out.setdefault(process.pid, {"pid": process.pid, "command": process.command,
                                                 "cores": []})
            entry["cores"] = sorted(set(entry["cores"]) | set(cores))
    return out


class NeuronHolders:
    """Follows a run's events; ``load(index)`` hands back (and forgets) ``{"neuron_holders":
    [{"pid", "command", "cores", "seen": ["start", "end"]}, ...]}`` for a configuration on the
    neuron device whose listing could be read (an empty list: nobody else), else ``{}``.

    ``read`` lists the devices (``neuron_ls``: tests give one with a fake runner), ``own``
    returns this run's pids (``own_pids``)."""

    def __init__(self, read: Callable[[], Listing] = neuron_ls,
                 own: Callable[[], Iterable[int]] = own_pids) -> None:
        self._read, self._own_now = read, own
        self._own: Set[int] = set()  # every pid seen as ours, across configurations
        self._index: Optional[int] = None  # the neuron configuration being watched
        self._ours: Set[int] = set()
        self._found: Optional[Dict[int, Dict[str, Any]]] = None  # None: no listing read

    def __call__(self, event: Any) -> None:
        try:
            self._apply(event)
        except Exception:  # never worth a broken recording
            pass

    def _apply(self, event: Any) -> None:
        if isinstance(event, ConfigStarted):
            config = event.config
            neuron = str(config.device).split(":", 1)[0] == "neuron"
            self._index, self._found = (event.index if neuron else None), None
            options = config.device_options or {}
            size, first = int(options.get("pipeline_size") or 1), int(options.get("first_core") or 0)
            self._ours = set(range(first, first + max(1, int(config.copies)) * max(1, size)))
        elif self._index is None or getattr(event, "index", None) != self._index:
            return
        elif isinstance(event, PhaseChanged) and event.phase == "warmup":
            self._look("start")
        elif isinstance(event, ConfigFinished):
            self._look("end")

    def _look(self, when: str) -> None:
        self._own.update(self._own_now())  # first: our copies are alive while listed
        devices, why = self._read()
        if why or not devices:
            return
        found = self._found if self._found is not None else {}
        for pid, holder in foreign_holders(devices, self._own, self._ours).items():
            entry = found.setdefault(pid, {**holder, "seen": []})
            entry["cores"] = sorted(set(entry["cores"]) | set(holder["cores"]))
            if when not in entry["seen"]:
                entry["seen"].append(when)
        self._found = found

    def load(self, index: int) -> Dict[str, Any]:
        found = self._found if index == self._index else None
        if index == self._index:
            self._index, self._found = None, None
        if found is None:
            return {}
        return {"neuron_holders": [found[pid] for pid in sorted(found)]}


class HeldCoresNoted:
    """A sink in front of ``sink`` that follows the events with ``NeuronHolders`` and adds
    what it found to each finished configuration's ``details["neuron_holders"]``."""

    def __init__(self, sink: Callable[[Any], None],
                 holders: Optional[NeuronHolders] = None) -> None:
        self.sink = sink
        self.holders = holders or NeuronHolders()

    def __call__(self, event: Any) -> None:
        self.holders(event)
        if isinstance(event, ConfigFinished):
            found = self.holders.load(event.index)
            if found:
                result = event.result
                event = replace(event, result=replace(result, details={**result.details,
                                                                       **found}))
        self.sink(event)


def held_cores_noted(sink: Callable[[Any], None], device: str) -> Callable[[Any], None]:
    """``sink`` behind a ``HeldCoresNoted`` for a plan on the neuron device; as it is else."""
    return HeldCoresNoted(sink) if str(device).split(":", 1)[0] == "neuron" else sink


def core_names(cores: Iterable[int]) -> str:
    """``[2, 3]`` -> ``"nc2, nc3"``; runs of three or more as ``"nc4-nc31"``."""
    from .neuron.tools import core_spans

    parts = []
    for first, last in core_spans(cores):
        parts.extend([f"nc{first}-nc{last}"] if last - first >= 2 else
                     [f"nc{c}" for c in range(first, last + 1)])
    return ", ".join(parts)


def neuron_reasons(load: Mapping[str, Any]) -> List[str]:
    """One reason per other process ``NeuronHolders`` found holding NeuronCores; none where
    the listing was not read (``load`` without ``neuron_holders``)."""
    holders = load.get("neuron_holders") if isinstance(load, Mapping) else None
    reasons = []
    for holder in holders if isinstance(holders, list) else []:
        if not isinstance(holder, Mapping):
            continue
        cores = [c for c in holder.get("cores") or [] if isinstance(c, int)]
        what = (f"NeuronCore{'s' if len(cores) > 1 else ''} {core_names(cores)}" if cores
                else "a Neuron device")
        command = single_line(holder.get("command") or "?", 80)
        reasons.append(f"{what} held by another process (pid {holder.get('pid')}, {command}) "
                       "during the run")
    return reasons
