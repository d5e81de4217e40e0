"""The session browser that ``o`` opens: saved sessions, one line each, and a path to type.

Each line names a session (file name), when it was made, how many configurations it holds and
how they ended ("4 ok", "3 ok, 1 failed"); lines never wrap (a long name is cut with an
ellipsis). It lists the recent sessions and the sessions folder at first; any folder typed in
the field (Enter) lists that folder's sessions instead, and a file typed is opened as it is.

Each file is parsed to describe it, so the list is filled in by a thread of its own: the names
show at once ("reading"), and each line's facts as its file is read; a folder of large sessions,
or one on a slow network disk, never freezes the screen.

In the list, space marks (or unmarks) the highlighted session to compare, and ``c`` compares the
marked ones side by side (``comparescreen``): the first marked is the baseline. Each marked line
starts with its place in that order; marks stay while another folder is listed, so that
sessions of two folders can be compared. Fewer than two marked, or a marked file that cannot be
read, is said under the field (and in the notices), naming the file.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from latency_tui.core.api import load_session
from latency_tui.core.errors import UserError, printable, single_line

from .comparemodel import load_marked
from .comparescreen import CompareScreen
from .planstate import tui_words
from .screens import CheckedPath, modal_css

#: At most this many sessions are read for the list (newest first): each is a file to parse.
MAX_LISTED = 40
#: Columns of the file name on a line; past it the name ends in an ellipsis.
NAME_WIDTH = 30


def session_files(folder: Path, limit: int = MAX_LISTED) -> List[Path]:
    """The JSON files of ``folder``, newest first (none if it cannot be read)."""
    try:
        files = [p for p in folder.glob("*.json") if p.is_file()]
        files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []
    return files[:limit]


def describe(path: Path) -> Tuple[str, str, str, str]:
    """(name, date, configurations, status) of the session in ``path``; a file that is not
    one says so in its status."""
    name = single_line(path.name)
    try:
        session = load_session(path)
    except (UserError, OSError):
        return name, "", "", "not a session"
    created = session.created.replace("T", " ")[:16]
    n = len(session.results)
    counts: dict = {}
    for result in session.results:
        word = "ok" if result.status == "finished" else str(result.status)
        counts[word] = counts.get(word, 0) + 1
    status = ", ".join(f"{k} {w}" for w, k in counts.items()) or "empty"
    return name, created, f"{n} config{'s' if n != 1 else ''}", single_line(status)


#: A line's facts while its file is being read.
READING = ("", "", "", "reading")


def line(path: Path, mark: int = 0, facts: Optional[Tuple[str, str, str, str]] = None) -> Text:
    """One line of the list, never wrapped; ``mark`` is its place among the sessions marked to
    compare (0: not marked); ``facts`` what ``describe`` said of it (read when not given)."""
    name, created, configs, status = facts if facts is not None else describe(path)
    name = name or single_line(path.name)
    if len(name) > NAME_WIDTH:
        name = name[:NAME_WIDTH - 1] + "…"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(str(mark) if mark else " ", "bold reverse" if mark else "")
    text.append(" ")
    text.append(f"{name:<{NAME_WIDTH}}", "bold")
    text.append(f"  {created:<16}  {configs:>10}  ")
    text.append(status, "red" if "failed" in status or status == "not a session" else "")
    return text


class SessionBrowser(CheckedPath):
    """Pick a saved session from a list, or type a file or a folder."""

    DEFAULT_CSS = modal_css("SessionBrowser") + """
    SessionBrowser > Vertical { width: 90; }
    SessionBrowser OptionList { height: auto; max-height: 12; margin-top: 1; }
    SessionBrowser OptionList { text-wrap: nowrap; text-overflow: ellipsis; }
    SessionBrowser #marked { display: none; }
    SessionBrowser.-marked #marked { display: block; }
    SessionBrowser.-marked OptionList { max-height: 11; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("space", "mark", "Mark to compare"),
        Binding("c", "compare", "Compare the marked"),
    ]

    def __init__(self, folder: Path, recent: Sequence[str], default: str,
                 check: Callable[[str], Optional[str]]) -> None:
        super().__init__()
        self.folder = folder
        self.recent = [Path(p) for p in recent]
        self.default = default
        self.check = check
        #: The files the list shows, in its order.
        self.paths: List[Path] = []
        #: The sessions marked to compare, in the order marked (the first is the baseline).
        self.marked: List[Path] = []
        #: What each file listed holds (``describe``), read once: marking redraws the lines.
        self.facts: Dict[Path, Tuple[str, str, str, str]] = {}
        #: Which listing the reading thread fills in: a newer one makes it stop.
        self._listing = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Open a saved session", classes="title")
            yield Input(self.default, id="path", select_on_focus=False)
            yield Label("", id="error", classes="problem")
            yield Label("", id="where", classes="hint")
            yield OptionList(id="sessions")
            yield Label("", id="marked", classes="hint")
            yield Label("Enter opens the file typed, or lists the folder typed · Tab to the "
                        "list: Enter opens, space marks to compare, c compares the marked · "
                        "Escape cancels", classes="hint")

    def on_mount(self) -> None:
        files = list(dict.fromkeys(self.recent + session_files(self.folder)))
        self.show(files[:MAX_LISTED], f"recent sessions and {self.folder}")

    def show(self, files: Sequence[Path], where: str) -> None:
        """List ``files``, under a hint saying where they come from."""
        self.paths = list(files)
        options = self.query_one("#sessions", OptionList)
        options.clear_options()
        self.facts = {}
        options.add_options([Option(self._line(p), id=str(i)) for i, p in enumerate(self.paths)])
        self._listing += 1
        if self.paths:
            self.run_worker(functools.partial(self._describe_all, self._listing, list(self.paths)),
                            thread=True, group="describe", exclusive=True)
        where = single_line(where, 60)
        self.query_one("#where", Label).update(Text(
            f"{len(self.paths)} session file{'s' if len(self.paths) != 1 else ''} in {where}"
            if self.paths else f"no session files in {where}", no_wrap=True,
            overflow="ellipsis"))

    @property
    def described(self) -> bool:
        """True once every listed file's line says what it holds."""
        return all(p in self.facts for p in self.paths)

    def _describe_all(self, listing: int, paths: List[Path]) -> None:
        """On the reading thread: each file's facts, handed to the UI thread one by one."""
        for path in paths:
            if listing != self._listing:
                return
            facts = describe(path)
            try:
                self.app.call_from_thread(self._described, listing, path, facts)
            except RuntimeError:  # the app is gone
                return

    def _described(self, listing: int, path: Path, facts: Tuple[str, str, str, str]) -> None:
        if listing != self._listing or path not in self.paths or not self.is_attached:
            return
        self.facts[path] = facts
        self.query_one("#sessions", OptionList).replace_option_prompt_at_index(
            self.paths.index(path), self._line(path))

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        folder = Path(text).expanduser() if text else self.folder
        if folder.is_dir():  # a folder: list its sessions
            self.query_one("#error", Label).update("")
            self.show(session_files(folder), str(folder))
            return
        self.finish(text)

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        path = str(self.paths[int(event.option.id or 0)])
        self.query_one("#path", Input).value = path
        self.finish(path)

    def action_cancel(self) -> None:
        self.dismiss(None)

    # -- marking sessions to compare ----------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        """Space and c act on the list: in the field they are what is typed."""
        if action in ("mark", "compare"):
            return isinstance(self.focused, OptionList)
        return True

    def mark_of(self, path: Path) -> int:
        return self.marked.index(path) + 1 if path in self.marked else 0

    def _line(self, path: Path) -> Text:
        return line(path, self.mark_of(path), self.facts.get(path, READING))

    def action_mark(self) -> None:
        """Mark the highlighted session to compare, or unmark it."""
        options = self.query_one("#sessions", OptionList)
        index = options.highlighted
        if index is None or not 0 <= index < len(self.paths):
            return
        path = self.paths[index]
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        self.query_one("#error", Label).update("")
        for i, shown in enumerate(self.paths):  # the places after it move up
            options.replace_option_prompt_at_index(i, self._line(shown))
        names = ", ".join(f"{i} {single_line(p.name, 40)}" for i, p in enumerate(self.marked, 1))
        self.query_one("#marked", Label).update(Text(
            f"marked to compare: {names} (1 is the baseline) · c compares", no_wrap=True,
            overflow="ellipsis"))
        self.set_class(bool(self.marked), "-marked")

    def action_compare(self) -> None:
        """The marked sessions side by side; a problem is said under the field instead."""
        sessions, problem = load_marked(self.marked)
        if problem:
            self.query_one("#error", Label).update(Text(printable(tui_words(problem))))
            notice = getattr(self.app, "notice", None)
            if notice is not None:
                notice("warning" if len(self.marked) < 2 else "error", problem)
            return
        self.query_one("#error", Label).update("")
        self.app.push_screen(CompareScreen(sessions))
