"""The subcommands that only read and print: ``presets``, ``devices`` and ``show`` (and a
search's outcome, which ``run`` prints too). Text from files and tools is printed as text."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from ..core.errors import UserError, single_line

EXIT_OK = 0


def print_search(console: Any, outcome: dict) -> None:
    from rich.text import Text

    from .searchview import answer_lines, pruned_lines, trials_table

    try:
        table, lines = trials_table(outcome), answer_lines(outcome) + pruned_lines(outcome)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # a file's, mangled
        console.print(Text("(the search's outcome in this session cannot be read)"))
        return
    console.print(table)
    for line in lines:
        console.print(Text(single_line(line, 2000)), soft_wrap=True)


def presets() -> int:
    from rich.table import Table
    from rich.text import Text

    from ..core.api import list_presets, user_preset_dir
    from .headless import output_console

    table = Table(header_style="bold")
    for name in ("preset", "origin", "model", "device", "batch", "copies", "workers", "description"):
        table.add_column(name)
    for p in list_presets():
        table.add_row(*(Text(single_line(cell)) for cell in (
            p.name, p.origin, p.model.source, p.run.device, ",".join(map(str, p.run.batch_sizes)),
            ",".join("all" if c < 1 else str(c) for c in p.run.copies),  # "all" is kept as -1
            ",".join(map(str, p.run.workers)), p.description)))
    console = output_console()
    console.print(table)
    console.print(Text(f"user presets: {single_line(user_preset_dir())}/*.toml"), soft_wrap=True)
    return EXIT_OK


def devices(as_json: bool) -> int:
    import json

    from rich.table import Table
    from rich.text import Text

    from ..core.api import describe_devices
    from .headless import output_console

    entries = describe_devices()
    if as_json:
        print(json.dumps(entries, indent=2, default=str))
        return EXIT_OK
    table = Table(header_style="bold")
    for name in ("device", "available", "what", "why not / notes"):
        table.add_column(name)
    for entry in entries:
        what = "; ".join(_device_text(d) for d in entry["devices"]) or "-"
        notes = "; ".join(f"{label}{entry[k]}" for k, label in (
            ("reason", ""), ("monitor", ""), ("api", "package "), ("instance_type", "instance "))
            if entry.get(k))
        table.add_row(entry["kind"], "yes" if entry["available"] else "no",
                      Text(single_line(what, 300)), Text(single_line(notes, 400)))
    output_console().print(table)
    return EXIT_OK


def _device_text(device: dict) -> str:
    """One device as words: ``index 0, name NVIDIA H200, ...``; who holds a NeuronCore by pid."""
    words = []
    for key, value in device.items():
        if value in (None, [], ""):
            continue
        if key == "held_by":
            value = ", ".join(f"pid {p['pid']} ({p['command']})" for p in value)
        elif isinstance(value, list):
            value = ",".join(map(str, value))
        words.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(words)


def show(paths: Union[str, Sequence[str]], columns: Optional[Sequence[str]] = None) -> int:
    """``show``: each session's results table (and its searches), in the order given. Every
    file is read first: one that cannot be read is refused (``UserError`` naming it) before
    anything is printed."""
    from ..core.api import load_session
    from .headless import model_title, output_console, results_table

    paths = [paths] if isinstance(paths, str) else list(paths)
    sessions = [(path, load_session(path)) for path in paths]
    console = output_console()
    for index, (path, session) in enumerate(sessions):
        if index:
            console.print()
        title = f"{path}: {model_title(session.preset.get('name', '?'), session.model)}"
        if session.created:
            title += f", {session.created}"
        console.print(results_table(session.results, title=title, columns=columns))
        for run in session.runs:
            if isinstance(run.get("search"), dict):
                print_search(console, run["search"])
    return EXIT_OK


def export(path: str, fmt: str, out: Optional[str], configs: Optional[tuple] = None) -> int:
    """``export``: the session in ``fmt`` on stdout, or written to ``out`` (only a regular file
    or a new one, as sessions are); ``configs`` picks configurations for an SVG."""
    import sys

    from ..core.api import check_writable, load_session
    from .export import export as render
    from .pictures import to_svg

    if configs and fmt != "svg":
        raise UserError("--config: only --format svg picks configurations")
    session = load_session(path)
    text = to_svg(session, configs) if configs else render(session, fmt)
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    target = check_writable(out, what="--out")
    target.write_text(text, encoding="utf-8")
    print(f"exported {len(text):,} characters to {single_line(target)}", file=sys.stderr)
    return EXIT_OK
