"""The preset the user chose, the changes they made to it, and the plan both make; no Textual.

The app never builds a plan itself. It keeps the user's changes as a dict of override fields
(the names of ``core.api.Overrides``) and asks the core to resolve them, so the TUI and the
headless command line validate a configuration with the same code and the same messages.

It also knows which devices this host has: for the edit form's choices (``describe_devices``,
once per app) and before a run (``unavailable``: a plan on a device this host cannot run is
refused with the reason instead of failing every configuration). Both may import torch
(seconds), so the app calls them off the UI thread; cpu and fake need no check.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Dict, List, Optional, Tuple

from latency_tui.core import api
from latency_tui.core.errors import UserError, single_line
from latency_tui.core.specs import RunPlan


#: Devices always at hand: nothing to import, nothing to check.
ALWAYS_THERE = ("cpu", "fake")

#: The plan builder names the command line's flags; the TUI names its dialogs' fields (the edit
#: form's labels, which the sweep prompts share).
FIELD_WORDS = {
    "--model": "model", "--device": "device", "--batch-sizes": "batch sizes",
    "--copies": "copies", "--workers": "workers per copy", "--copy-mode": "copy mode",
    "--duration": "duration (s)", "--samples": "samples", "--warmup-max": "warm-up max (s)",
    "--timeout": "timeout (s)", "--first-timeout": "first-inference timeout (s)",
}
_FLAG = re.compile(r"(?<![\w/.-])--[a-z][a-z-]*(?![\w-])")
#: The tool's own errors say all in their message: their class names go.
_OWN_ERROR = re.compile(r"(?<![^\s(])(?:\w+\.)*(?:UserError|UserCodeExit|ConfigurationError|"
                        r"EngineProcessError): ")
#: Any other exception's class name, as the start of a message ("KeyError: 'x'").
_ERROR_NAME = re.compile(r"(?<![^\s(])(?:\w+\.)*([A-Z]\w*(?:Error|Exception|Exit|Interrupt))"
                         r"(?=: |$)")


def tui_words(text: str) -> str:
    """A message in the TUI's words: the dialogs' field names for the command line's flags
    (``--copies`` -> ``copies``), no exception class names (``UserError:`` goes;
    ``ZeroDivisionError: x`` reads ``zero division error: x``)."""
    text = _FLAG.sub(lambda m: FIELD_WORDS.get(m.group(), m.group()), str(text))
    text = _OWN_ERROR.sub("", text)

    def words(match: "re.Match[str]") -> str:
        parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", match.group(1))
        return " ".join(p if len(p) > 1 and p.isupper() else p.lower() for p in parts)

    return _ERROR_NAME.sub(words, text)


class PlanState:
    def __init__(self) -> None:
        self.preset: Optional[api.Preset] = None
        self.overrides: Dict[str, Any] = {}
        self.plan: Optional[RunPlan] = None
        #: ``api.describe_devices()``, once read (None until then).
        self.described: Optional[List[Dict[str, Any]]] = None
        #: Why a plan's devices cannot run here (None: they can), by the devices and options.
        self._reasons: Dict[Tuple[Any, ...], Optional[str]] = {}
        self._lock = threading.Lock()
        #: A device check is under way (a second r waits for it).
        self.checking = False

    @staticmethod
    def presets() -> List[api.Preset]:
        return list(api.list_presets())

    @staticmethod
    def default_name() -> Optional[str]:
        """The preset opened when none is named: the default one if it exists, else the first."""
        names = [p.name for p in api.list_presets()]
        if api.DEFAULT_PRESET in names:
            return api.DEFAULT_PRESET
        return names[0] if names else None

    def load(self, name_or_path: str) -> RunPlan:
        """Make ``name_or_path`` (a preset name or a TOML path) current, with no changes."""
        preset = api.load_preset(name_or_path)
        plan = api.plan_with(preset, {})
        self.preset, self.overrides, self.plan = preset, {}, plan
        return plan

    def check(self, changes: Dict[str, Any]) -> Optional[str]:
        """The plan builder's objection to these changes, or None."""
        if self.preset is None:
            return "no preset: p picks one"
        try:
            api.plan_with(self.preset, {**self.overrides, **changes})
        except UserError as exc:
            return str(exc)
        return None

    def apply(self, changes: Dict[str, Any]) -> RunPlan:
        """Add ``changes`` to the overrides and rebuild the plan (``UserError`` if it cannot)."""
        if self.preset is None:
            raise UserError("no preset: p picks one")
        plan = api.plan_with(self.preset, {**self.overrides, **changes})
        self.overrides = {**self.overrides, **changes}
        self.plan = plan
        return plan

    def axis(self, name: str) -> Tuple[int, ...]:
        return self.plan.axis(name) if self.plan is not None else ()

    @staticmethod
    def parse_ints(text: str, what: str) -> Tuple[int, ...]:
        return api.parse_int_list(text, what)

    # -- the devices of this host ----------------------------------------------------------
    @staticmethod
    def _device_key(plan: RunPlan) -> Tuple[Any, ...]:
        """The plan's devices that need a check, with their options (what ``unavailable``
        depends on); empty for cpu and fake."""
        devices = dict.fromkeys(c.device for c in plan.configs)
        return tuple((device, repr(sorted(next(
            c.device_options for c in plan.configs if c.device == device).items())))
            for device in devices if device.partition(":")[0] not in ALWAYS_THERE)

    def device_known(self, plan: RunPlan) -> bool:
        """True when ``unavailable(plan)`` answers at once (cpu, fake, or checked before)."""
        key = self._device_key(plan)
        return not key or key in self._reasons

    def unavailable(self, plan: RunPlan) -> Optional[str]:
        """Why this host cannot run ``plan``'s device (``api.check_available``'s words), or
        None. Imports the device's packages the first time (seconds); cached after."""
        key = self._device_key(plan)
        if not key:
            return None
        with self._lock:
            if key not in self._reasons:
                try:
                    api.check_available(plan)
                    reason: Optional[str] = None
                except UserError as exc:
                    reason = str(exc)
                except Exception as exc:  # a broken install: say so rather than run blind
                    reason = f"cannot check the device: {api.describe_error(exc)}"
                self._reasons[key] = reason
            return self._reasons[key]

    def describe_devices(self) -> List[Dict[str, Any]]:
        """``api.describe_devices()``, read once (seconds: it may import torch)."""
        with self._lock:
            if self.described is None:
                try:
                    self.described = list(api.describe_devices())
                except Exception:  # the form still offers cpu and fake
                    self.described = []
            return self.described

    def device_choices(self, current: str) -> List[Tuple[str, str]]:
        """(label, device) for the edit form: cpu, fake and what ``describe_devices`` found
        available (every GPU, ``cuda:all`` with more than one), and ``current`` whatever it
        is (a preset may name a device this host lacks: shown with the reason)."""
        choices = [("cpu", "cpu"), ("fake  (a simulated device)", "fake")]
        reasons: Dict[str, str] = {}
        for entry in self.described or ():
            kind = entry.get("kind")
            if kind in ALWAYS_THERE:
                continue
            if not entry.get("available"):
                reasons[str(kind)] = str(entry.get("reason") or "not available here")
                continue
            devices = list(entry.get("devices") or ())
            choices.append((str(kind), str(kind)))
            if kind == "cuda":  # as this process numbers them (CUDA_VISIBLE_DEVICES)
                visible = sorted((d["cuda_index"], d) for d in devices
                                 if isinstance(d.get("cuda_index"), int))
                for index, device in visible:
                    name = device.get("name") or device.get("error") or ""
                    choices.append((f"cuda:{index}  {name}".rstrip(), f"cuda:{index}"))
                if len(visible) > 1:
                    choices.append((f"cuda:all  (copy i on GPU i mod {len(visible)})",
                                    "cuda:all"))
        if current and current not in [value for _, value in choices]:
            reason = reasons.get(current.partition(":")[0])
            label = f"{current}  (not on this host: {single_line(reason, 60)})" if reason \
                else current
            choices.insert(0, (label, current))
        return choices
