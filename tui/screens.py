"""Modal screens: help, the sweep prompts, paths, confirmation, the preset picker and the
configuration form.

Each screen validates its own input before it closes, and says what is wrong in words under
the field, so that a bad value never reaches the engine. Every one closes with Escape and
answers ``None`` (or False) when cancelled.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rich.table import Table
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.keys import format_key
from textual.widgets.option_list import Option

from latency_tui.core.errors import UserError, printable, single_line

from .editfields import COPY_MODES, EDIT_FIELDS, parse_field
from .keys import DEFAULT_KEYS, REMAPPABLE
from .layout import REFRESH_STEPS
from .planstate import tui_words

_MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: thick $primary; background: $surface; padding: 0 1;
}}
{name} .title {{ text-style: bold; width: 100%; margin-bottom: 1; }}
{name} .hint {{ color: $text-muted; width: 100%; }}
{name} .problem {{ color: $text-error; text-style: bold; width: 100%; }}
"""


def modal_css(name: str) -> str:
    return _MODAL_CSS.format(name=name)


class HelpScreen(ModalScreen[None]):
    """Every key the app answers to (as currently mapped), and what the panes show. The middle
    scrolls (arrows, Page Up/Down, Home/End) when the terminal is too short to show it all."""

    DEFAULT_CSS = modal_css("HelpScreen") + """
    HelpScreen > Vertical { width: 84; }
    HelpScreen VerticalScroll { height: auto; }
    """
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=True),
    ]
    #: Rows of the dialog around the scrolling part: border, title and its margin, the hint.
    CHROME = 5

    def __init__(self, keys: Sequence[Tuple[str, str]],
                 hints: Optional[Dict[str, str]] = None,
                 help_keys: Sequence[str] = ("question_mark",)) -> None:
        super().__init__()
        self.keys = list(keys)
        #: The app's help key(s) as mapped close it too (the app's keys do not reach a modal).
        self.help_keys = tuple(help_keys)
        #: The keys as now mapped, by binding id, and the redraw interval ("refresh").
        self.hints = {**{i: format_key(k[0]) for i, k in DEFAULT_KEYS.items()}, "refresh": "0.5",
                      **(hints or {})}

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        closers = list(dict.fromkeys(["Escape", self.hints["help"], "q"]))
        with Vertical():
            yield Label("latency-tui keys", classes="title")
            with VerticalScroll():
                yield Static(table)
                yield Static(Text(help_notes(self.hints), style="dim"), id="notes")
            yield Label(f"{', '.join(closers[:-1])} or {closers[-1]} closes this help; "
                        "arrows and Page Up/Down scroll it.", classes="hint", id="close-hint")

    def on_mount(self) -> None:
        self._fit(self.app.size.height)
        self.query_one(VerticalScroll).focus()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """The scrolling part as tall as the terminal leaves it, so that the dialog's title and
        its last line stay on screen at 80x24."""
        self.query_one(VerticalScroll).styles.max_height = max(3, height - self.CHROME)

    def on_key(self, event: events.Key) -> None:
        if event.key in self.help_keys:
            event.stop()
            self.dismiss(None)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


#: The number keys at 100 columns and wider (below, they follow the columns then visible).
SORTING = "1 #, 2 batch, 3 copies, 4 workers, 5 inf/s, 6 samples/s, 7 p50, 8 p90, 9 p99, 0 status"


def help_notes(hints: Dict[str, str]) -> str:
    """What the panes and keys do, naming the keys as mapped."""
    steps = ", ".join(f"{s:g}" for s in REFRESH_STEPS)
    return (
        f"\nSorting: {hints.get('sorting') or SORTING}, or click a column header; the same key "
        "again reverses.\n"
        "Up/down in the results table shows that configuration in the panes when no run is "
        "going.\n"
        f"Sweeps ask for values like 1,2,4,8 and start the run at once; {hints['run']} re-runs "
        "the current plan.\n"
        f"Pause ({hints['pause']}) freezes the panes only: the run goes on, and its events keep "
        "being collected.\n"
        f"The panes redraw every {hints['refresh']} s; {hints['faster']} and {hints['slower']} "
        f"step through {steps} s.\n"
        "Keys can be remapped in keys.toml in the user config directory, by binding id: "
        f"{', '.join(REMAPPABLE)}. A mistake there is a notice at start, and that key keeps "
        "its default."
    )


class ValuesPrompt(ModalScreen[Optional[Tuple[int, ...]]]):
    """Ask for a list of whole numbers ("1,2,4,8") for one axis of a sweep."""

    DEFAULT_CSS = modal_css("ValuesPrompt")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, default: str,
                 parse: Callable[[str], Tuple[int, ...]]) -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.default = default
        self.parse = parse

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(self.default, id="values", select_on_focus=False)
            yield Label("", id="error", classes="problem")
            yield Label(self.hint, classes="hint")
            yield Label("Enter runs the sweep · Escape cancels", classes="hint")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        try:
            values = self.parse(event.value)
        except (UserError, ValueError) as exc:
            self.query_one("#error", Label).update(Text(printable(tui_words(str(exc)))))
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CheckedPath(ModalScreen[Optional[str]]):
    """A screen that closes with a path once ``self.check`` finds nothing wrong with it; what
    is wrong shows in its ``#error`` label, in the TUI's words."""

    check: Callable[[str], Optional[str]]

    def finish(self, path: str) -> None:
        problem = self.check(path)
        if problem:
            self.query_one("#error", Label).update(Text(printable(tui_words(problem))))
            return
        self.dismiss(path)


class PathPrompt(CheckedPath):
    """Ask for a file path, with recent files to pick from and a check before closing."""

    DEFAULT_CSS = modal_css("PathPrompt") + """
    PathPrompt OptionList { height: auto; max-height: 8; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, check: Callable[[str], Optional[str]],
                 recent: Sequence[str] = (), action: str = "save") -> None:
        super().__init__()
        self.title_text = title
        self.default = default
        self.check = check
        self.recent = list(recent)
        self.action_word = action

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(self.default, id="path", select_on_focus=False)
            yield Label("", id="error", classes="problem")
            if self.recent:
                yield Label("recent sessions (Tab, then Enter to pick one):", classes="hint")
                yield OptionList(*[Option(Text(single_line(path)), id=str(i)) for i, path in
                                   enumerate(self.recent)], id="recent")
            yield Label(f"Enter to {self.action_word} · Escape cancels", classes="hint")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        self.finish(event.value.strip())

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        path = self.recent[int(event.option.id or 0)]
        self.query_one("#path", Input).value = path
        self.finish(path)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y or Enter on Yes confirms, n or Escape declines."""

    DEFAULT_CSS = modal_css("ConfirmScreen") + """
    ConfirmScreen Horizontal { height: auto; align: center middle; margin-top: 1; }
    ConfirmScreen Button { margin: 0 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, classes="title")
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PresetPicker(ModalScreen[Optional[str]]):
    """Pick a built-in or user preset, or type the path of a preset file."""

    DEFAULT_CSS = modal_css("PresetPicker") + """
    PresetPicker OptionList { height: auto; max-height: 16; }
    PresetPicker Input { margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, presets: Sequence[Any], current: Optional[str] = None) -> None:
        super().__init__()
        self.presets = list(presets)
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for preset in self.presets:
            label = Text.assemble((single_line(preset.name), "bold"), "  ",
                                  (single_line(preset.description), "dim"))
            if preset.name == self.current:
                label.append("  (current)", "italic")
            options.append(Option(label, id=preset.name))
        with Vertical():
            yield Label("Preset", classes="title")
            yield OptionList(*options, id="presets")
            yield Input(placeholder="or the path of a preset file (.toml), then Enter",
                        id="path")
            yield Label("Enter picks · Tab moves · Escape cancels", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one("#presets", OptionList)
        names = [p.name for p in self.presets]
        if self.current in names:
            options.highlighted = names.index(self.current)
        options.focus()

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Input.Submitted)
    def typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditScreen(ModalScreen[Optional[Dict[str, Any]]]):
    """Edit the configuration; closes only once the plan builder accepts the values."""

    DEFAULT_CSS = modal_css("EditScreen") + """
    EditScreen Grid {
        grid-size: 2; grid-columns: 20 1fr; grid-rows: 1; grid-gutter: 1 0; height: auto;
    }
    EditScreen Input { background: $boost; }
    EditScreen Select { width: 1fr; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, values: Dict[str, str], parse_ints: Callable[[str, str], Tuple[int, ...]],
                 validate: Callable[[Dict[str, Any]], Optional[str]],
                 devices: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__()
        self.values = values
        self.parse_ints = parse_ints
        self.validate = validate
        self.devices = self._with_current(devices)

    def _with_current(self, devices: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
        """The device choices, the plan's own device always among them."""
        choices = [(single_line(label), value) for label, value in devices]
        current = self.values.get("device", "")
        if current and current not in [value for _, value in choices]:
            choices.insert(0, (single_line(current), current))
        return choices or [("cpu", "cpu")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Edit the configuration", classes="title")
            with Grid():
                for key, label, kind in EDIT_FIELDS:
                    yield Label(label)
                    if kind == "choice":
                        choices = self.devices if key == "device" else list(COPY_MODES)
                        yield Select(choices, value=self.values.get(key) or
                                     choices[0][1], allow_blank=False,
                                     id=f"field-{key}", compact=True)
                    else:
                        yield Input(self.values.get(key, ""), id=f"field-{key}",
                                    select_on_focus=False, compact=True)
            yield Label("", id="error", classes="problem")
            yield Label("Enter or ctrl+s applies · Tab moves · Escape cancels", classes="hint")

    def set_devices(self, devices: Sequence[Tuple[str, str]]) -> None:
        """Offer ``devices`` (once this host's are known), keeping the one chosen."""
        if not self.is_attached:
            return
        fields = self.query("#field-device")
        if not fields or not fields.first().is_mounted:  # not drawn yet: once it is
            self.call_after_refresh(self.set_devices, devices)
            return
        field = fields.first(Select)
        chosen = field.value
        self.devices = self._with_current(devices)
        field.set_options(self.devices)
        if chosen in [value for _, value in self.devices]:
            field.value = chosen

    def collect(self) -> Dict[str, Any]:
        """The form as overrides; raises UserError naming the field at fault."""
        out: Dict[str, Any] = {}
        for key, label, kind in EDIT_FIELDS:
            if kind == "choice":
                chosen = self.query_one(f"#field-{key}", Select).value
                out[key] = chosen if isinstance(chosen, str) and chosen else None
                continue
            text = self.query_one(f"#field-{key}", Input).value.strip()
            out[key] = parse_field(kind, label, text, self.parse_ints)
        return out

    def action_apply(self) -> None:
        try:
            overrides = self.collect()
        except UserError as exc:
            self.query_one("#error", Label).update(Text(printable(tui_words(str(exc)))))
            return
        problem = self.validate(overrides)
        if problem:
            self.query_one("#error", Label).update(Text(printable(tui_words(problem))))
            return
        self.dismiss(overrides)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_apply()

    def action_cancel(self) -> None:
        self.dismiss(None)

