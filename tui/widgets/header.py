"""The two header lines: what is being measured, and where the run stands."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from rich.text import Text

from latency_tui.core.errors import single_line
from textual.widgets import Static

#: Run states as words (never colour alone) and the style that goes with each.
STATE_STYLES = {
    "IDLE": "bold",
    "STARTING": "bold yellow",
    "RUNNING": "bold green",
    "STOPPING": "bold yellow",
    "FINISHED": "bold",
    "FINISHED with errors": "bold yellow",
    "STOPPED": "bold yellow",
    "FAILED": "bold red",
    "VIEWING": "bold cyan",
}


@dataclass(frozen=True)
class HeaderInfo:
    preset: str = ""
    model: str = ""
    device: str = ""
    batch: str = ""
    parallel: str = ""  # "2 x 2"
    mode: str = ""  # how copies run: "threads", "processes"
    position: str = ""  # "config 2/4"
    state: str = "IDLE"
    phase: str = ""  # "measuring 4.1 / 10 s"
    elapsed: str = ""
    created: str = ""  # a saved session's date, instead of elapsed time
    remaining: str = ""
    note: str = ""  # "display paused", a hint


class HeaderBar(Static):
    """Line 1: preset, model, device, batch, copies x workers. Line 2: state and time."""

    DEFAULT_CSS = """
    HeaderBar { height: 2; padding: 0 1; background: $panel; text-wrap: nowrap;
                text-overflow: ellipsis; }
    """

    def show(self, info: HeaderInfo) -> None:
        # The header's size never depends on its text: repaint, skip the layout pass.
        width = self.content_region.width or None
        if (info, width) != getattr(self, "_shown", None):
            self._shown = (info, width)
            self.update(render_header(info, width), layout=False)

    def on_resize(self) -> None:
        shown = getattr(self, "_shown", None)
        if shown is not None:
            self.show(shown[0])


def render_header(info: HeaderInfo, width: Optional[int] = None, compact: bool = False) -> Text:
    """The two lines; given the ``width``, a long model name gives way first, so that the
    batch, copies x workers and copy mode stay on screen; where even that does not fit (80
    columns), the labels shorten ("2 x 1 in threads" for copies x workers)."""
    model = single_line(info.model)
    if width:
        if not compact and len(render_header(replace(info, model=model[:9]), None)
                               .plain.split("\n")[0]) > width:
            return render_header(info, width, compact=True)
        rest = render_header(replace(info, model=""), None, compact).plain.split("\n")[0]
        room = width - len(rest) - len("  model ")
        if model and len(model) > room:
            model = model[:max(room - 1, 8)] + "…"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("latency-tui", "bold reverse")

    def field(label: str, value: str) -> None:
        if value:
            text.append(f"  {'' if compact and label != 'batch' else label + ' '}", "dim")
            text.append(single_line(value), "bold")

    field("preset", info.preset)
    field("model", model)
    field("device", info.device)
    field("batch", info.batch)
    if info.parallel:
        copies, _, workers = info.parallel.partition(" x ")
        field("copies", copies)
        text.append(" x " if compact else " x workers ", "dim")
        text.append(workers, "bold")
        if info.mode:
            text.append(" in ", "dim")
            text.append(single_line(info.mode), "bold")
    text.append("\n")
    text.append(f" {info.state} ", STATE_STYLES.get(info.state, "bold") + " reverse")
    for part in (info.position, info.phase):
        if part:
            text.append(f"  {single_line(part)}")
    if info.elapsed:
        text.append("  elapsed ", "dim")
        text.append(info.elapsed)
    if info.created:
        text.append("  created ", "dim")
        text.append(info.created)
    if info.remaining:
        text.append(f"  {info.remaining}", "dim")
    if info.note:
        text.append(f"  {single_line(info.note)}", "bold italic")
    return text
