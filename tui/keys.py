"""The app's keys: bindings with ids that keys.toml can remap, the check of such a remapping,
and the hints and help written from the keys as they are mapped.

A remapping is checked before it is applied (``check_keymap``): an unknown id, a value that is
not a string, a name that is no key, or a key that another action or Textual itself already
answers to (``run = "q"`` would take over quit, ``run = "5"`` a sort key) is refused with a
notice naming the file and line, and that action keeps its default keys. The app's texts name
the default keys ("r runs it"); ``localize`` rewrites such hints to the active keys.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from textual.app import App
from textual.binding import Binding, InvalidBinding
from textual.keys import KEY_ALIASES, KEY_NAME_REPLACEMENTS, Keys, format_key, key_to_character
from textual.screen import Screen

#: The three sweep keys share one footer entry ("b c w Sweep"), so that every key fits at 80.
_SWEEP = Binding.Group("Sweep")

BINDINGS = [
    Binding("r", "toggle_run", "Run/Stop", id="run"),
    Binding("b", "sweep('batch_sizes')", "Batch sweep", id="sweep_batch", group=_SWEEP),
    Binding("c", "sweep('copies')", "Copies sweep", id="sweep_copies", group=_SWEEP),
    Binding("w", "sweep('workers')", "Workers sweep", id="sweep_workers", group=_SWEEP),
    Binding("t", "search", "Search", id="search", show=False),
    Binding("p", "pick_preset", "Preset", id="preset"),
    Binding("e", "edit", "Edit", id="edit"),
    Binding("s", "save", "Save", id="save"),
    Binding("x", "export_screen", "Export the screen (SVG)", id="export", show=False),
    Binding("o", "open", "Open", id="open"),
    Binding("space", "pause", "Pause", id="pause"),
    Binding("question_mark", "help", "Help", id="help", key_display="?"),
    Binding("q", "quit", "Quit", id="quit"),
    Binding("plus,equals_sign", "refresh_rate(0.5)", "Redraw faster", show=False, id="faster"),
    Binding("minus", "refresh_rate(2.0)", "Redraw slower", show=False, id="slower"),
    *[Binding(str(n), f"sort({n})", f"Sort results by column {n}", show=False,
              id=f"sort_{n}") for n in range(10)],
]

#: Each binding id's default keys (Textual's names: "question_mark", "plus"), its description
#: and its action.
DEFAULT_KEYS: Dict[str, Tuple[str, ...]] = {}
for _binding in Binding.make_bindings(BINDINGS):
    DEFAULT_KEYS[str(_binding.id)] = DEFAULT_KEYS.get(str(_binding.id), ()) + (_binding.key,)
DESCRIPTIONS = {str(b.id): b.description for b in BINDINGS}
ACTIONS = {str(b.id): b.action for b in BINDINGS}
#: The ids keys.toml may remap: the sort keys 0-9 stay (help and the table name them).
REMAPPABLE = tuple(i for i in DEFAULT_KEYS if not i.startswith("sort_"))

_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_NAMED_KEYS = {k.value for k in Keys if not k.value.startswith("<")} | \
    set(KEY_NAME_REPLACEMENTS.values())


def is_key_name(key: str) -> bool:
    """True for a key Textual can report: "x", "R", "f5", "ctrl+x", "question_mark"."""
    *modifiers, base = key.split("+")
    if not base or len(set(modifiers)) != len(modifiers) or \
            any(m not in _MODIFIERS for m in modifiers):
        return False
    return base in _NAMED_KEYS or key_to_character(base) is not None


def _aliases(key: str) -> List[str]:
    """``key`` and what a terminal may send for it instead (tab is ctrl+i)."""
    return [key, *KEY_ALIASES.get(key, ()), *(k for k, v in KEY_ALIASES.items() if key in v)]


def _shown(keys: Iterable[str]) -> str:
    """Keys as keys.toml may name them: "r", "question_mark"."""
    return ", ".join(json.dumps(k) for k in keys)


def builtin_keys() -> Dict[str, Tuple[str, str]]:
    """Keys Textual and the results table answer to before the app's own bindings:
    key -> (action, what it does in words)."""
    from .widgets.results import ResultsTable

    out: Dict[str, Tuple[str, str]] = {"escape": ("", "the key that closes every dialog")}
    sources = [(App, "Textual's {}"), (Screen, "Textual's {}")] + [
        (klass, "the results table's {}") for klass in reversed(ResultsTable.__mro__)
        if "BINDINGS" in vars(klass)]
    for klass, words in sources:
        for binding in Binding.make_bindings(vars(klass).get("BINDINGS", ())):
            action = binding.action.rpartition(".")[2]
            out[binding.key] = (action, words.format(action.replace("_", " ")))
    out[App.COMMAND_PALETTE_BINDING] = ("command_palette", "the command palette")
    return out


def _parse(binding_id: str, value: Any) -> Tuple[Optional[Tuple[str, ...]], str]:
    """(normalised keys, "") or (None, why the value is refused)."""
    if binding_id not in DEFAULT_KEYS:
        near = difflib.get_close_matches(binding_id, REMAPPABLE, n=1)
        return None, f"unknown binding id {json.dumps(binding_id)} (" + (
            f"did you mean {json.dumps(near[0])}?)" if near else
            f"known: {', '.join(REMAPPABLE)})")
    if binding_id not in REMAPPABLE:
        return None, "the sort keys 0-9 cannot be remapped"
    example = f'e.g. {binding_id} = "{"x" if binding_id != "run" else "R"}"'
    if not isinstance(value, str):
        return None, f"{binding_id} = {value!r}: not a string; write keys in quotes, {example}"
    try:
        keys = [b.key for b in Binding.make_bindings([Binding(value, "")])]
    except InvalidBinding:
        return None, f"{binding_id} = {json.dumps(value)}: an empty key name; {example}"
    bad = [k for k in keys if not is_key_name(k)]
    if bad:
        return None, (f"{binding_id} = {json.dumps(value)}: {json.dumps(bad[0])} is not a key "
                      f'name (e.g. "R", "f5", "ctrl+r", "question_mark")')
    return tuple(dict.fromkeys(keys)), ""


def _clash(binding_id: str, final: Dict[str, Tuple[str, ...]], wanted: Dict[str, Any],
           builtin: Dict[str, Tuple[str, str]]) -> str:
    """Why ``binding_id``'s wanted keys cannot be had, or "". Between two remapped ids the one
    written first keeps the key; a default key is always kept."""
    order = list(wanted)
    for key in final[binding_id]:
        for alias in _aliases(key):
            taken = builtin.get(alias)
            if taken and taken[0] != ACTIONS[binding_id].partition("(")[0]:
                return f"{_shown([key])} is {taken[1]}"
            for other, keys in final.items():
                if other == binding_id or alias not in keys:
                    continue
                if other in wanted and order.index(other) > order.index(binding_id):
                    continue  # the later one is refused when its turn comes
                if other.startswith("sort_"):
                    return f"{_shown([key])} sorts the results (column {other[5:]})"
                return f"{_shown([key])} is already {DESCRIPTIONS[other]}'s key ({other})"
    return ""


def check_keymap(entries: Mapping[str, Any]) -> Tuple[Dict[str, str], List[Tuple[str, str]]]:
    """The remapping to apply ({binding id: "key,key"}) and what was refused, as
    (binding id, why), the refused ids keeping their default keys."""
    wanted: Dict[str, Tuple[str, ...]] = {}
    problems: List[Tuple[str, str]] = []
    for binding_id, value in entries.items():
        keys, why = _parse(str(binding_id), value)
        if keys is None:
            problems.append((str(binding_id), why))
        else:
            wanted[str(binding_id)] = keys
    builtin = builtin_keys()
    refused = True
    while refused:  # refusing one remapping gives its default keys back: check again
        refused = False
        final = {i: wanted.get(i, keys) for i, keys in DEFAULT_KEYS.items()}
        for binding_id in list(wanted):
            why = _clash(binding_id, final, wanted, builtin)
            if why:
                value = entries[binding_id]
                problems.append((binding_id, f"{binding_id} = {json.dumps(value)}: {why}"))
                del wanted[binding_id]
                refused = True
                break
    return {i: ",".join(keys) for i, keys in wanted.items()}, problems


def apply_keymap(app: Any, source: Any) -> Dict[str, str]:
    """Check ``source`` (``prefs.KeysFile``, or a plain {binding id: keys}), tell the user in a
    notice per problem where it is and what is wrong, apply what is sound and return it."""
    path = getattr(source, "path", None)
    entries = getattr(source, "entries", source) or {}
    lines: Mapping[str, int] = getattr(source, "lines", {})
    name = str(path) if path is not None else "keymap"
    app.keymap = {}  # nothing remapped until checked: the notices below name default keys
    for line, problem in getattr(source, "problems", ()):
        where = f"{name}, line {line}" if line else name
        app.notice("warning", f"{where}: {problem}")
    accepted, problems = check_keymap(entries)
    for binding_id, problem in sorted(problems, key=lambda p: lines.get(p[0], 0)):
        line = lines.get(binding_id)
        where = f"{name}, line {line}" if line else name
        keeps = f"; {binding_id} keeps {_shown(DEFAULT_KEYS[binding_id])}" \
            if binding_id in REMAPPABLE else ""
        app.notice("warning", f"{where}: {problem}{keeps}")
    if accepted:
        app.set_keymap(accepted)
    return accepted


# -- what the app says about its keys ----------------------------------------------------------
def _remapped(app: Any) -> Mapping[str, str]:
    """The remapping in force: ``app.keymap`` once ``apply_keymap`` has checked it."""
    keymap = getattr(app, "keymap", None)
    return keymap if isinstance(keymap, Mapping) else {}


def active_keys(app: Any, binding_id: str) -> Tuple[str, ...]:
    """The keys ``binding_id`` answers to now (Textual's names: "r", "question_mark")."""
    mapped = _remapped(app).get(binding_id)
    return tuple(mapped.split(",")) if isinstance(mapped, str) and mapped else \
        DEFAULT_KEYS[binding_id]


def key_display(app: Any, binding_id: str) -> str:
    """How the footer shows the first key of ``binding_id`` as now mapped ("r", "?", "^r")."""
    return str(app.get_key_display(Binding(active_keys(app, binding_id)[0], "")))


def displays(app: Any) -> Dict[str, str]:
    """{binding id: key_display} for every remappable id."""
    return {i: key_display(app, i) for i in REMAPPABLE}


_DEFAULT_DISPLAY = {format_key(DEFAULT_KEYS[i][0]): i for i in REMAPPABLE
                    if len(DEFAULT_KEYS[i]) == 1}
_TOKEN = "|".join(re.escape(k) for k in sorted(_DEFAULT_DISPLAY, key=len, reverse=True))
#: A default key named in a hint: "r runs it", "q again", "press p", "(r)", "space resumes".
_HINT = re.compile(
    rf"(?<![\w-])({_TOKEN})(?= (?:runs|re-runs|picks|quits|again|resumes|stops|closes)\b)"
    rf"|(?<=press )({_TOKEN})(?![\w-])|(?<=\()({_TOKEN})(?=\))")


def localize(app: Any, text: str) -> str:
    """``text`` with the default keys its hints name replaced by the keys now mapped."""
    remapped = _remapped(app)
    if not remapped or not isinstance(text, str):
        return text

    def active(match: "re.Match[str]") -> str:
        key = next(g for g in match.groups() if g)
        binding_id = _DEFAULT_DISPLAY[key]
        return key_display(app, binding_id) if binding_id in remapped else key

    return _HINT.sub(active, text)


def sort_legend(app: Any) -> List[Tuple[str, str]]:
    """(number key, column header) for the results table's columns as now visible (at 80
    columns 1 sorts by batch, at 120 by #)."""
    from .widgets.results import COLUMNS, ResultsTable, sort_keys

    headers = {key: header.replace(" ms", "") for key, header, _ in COLUMNS}
    return [(k, headers[c]) for k, c in sort_keys(app.query_one(ResultsTable).visible_columns)]


def key_rows(app: Any) -> List[Tuple[str, str]]:
    """(keys, description) for the app's own bindings as currently mapped, in order."""
    order = [b.description for b in BINDINGS]
    keys: Dict[str, List[str]] = {}
    for active in app.active_bindings.values():
        binding = active.binding
        if active.node is app and binding.description in order and \
                not (binding.id or "").startswith("sort_"):
            keys.setdefault(binding.description, []).append(app.get_key_display(binding))
    rows = [(" ".join(keys[d]), d) for d in order if d in keys]
    legend = sort_legend(app)
    if legend:
        span = f"{legend[0][0]}-{legend[-1][0]}" if len(legend) > 1 else legend[0][0]
        rows.append((span.replace("-0", "-9, 0"), "Sort the results by a column (see below)"))
    rows.append((app.get_key_display(Binding(app.COMMAND_PALETTE_BINDING, "")),
                 "Command palette: presets and actions"))
    return rows


def show_help(app: Any) -> None:
    """Show help: every key as mapped (the help key closes it again)."""
    from .screens import HelpScreen

    hints = displays(app)
    hints["refresh"] = f"{getattr(app, 'refresh_s', 0.5):g}"
    hints["sorting"] = ", ".join(f"{k} {header}" for k, header in sort_legend(app))
    app.push_screen(HelpScreen(key_rows(app), hints, active_keys(app, "help")))
