"""The shape the code keeps: the engine imports nothing of Textual, the views reach the engine
only through its facade, events, session model, specs and errors, no private name crosses a
module, and every module is of a size one can read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = sorted((REPO / "core").rglob("*.py"))
TUI = sorted((REPO / "tui").rglob("*.py"))
#: What of core the views may import (``latency_tui.core`` itself only for ``__version__``).
TUI_MAY_IMPORT = {"api", "events", "session", "specs", "errors"}
MAX_LINES = 420


def imports(path: Path):
    """(module, names) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["latency_tui", path.parent.relative_to(REPO).parts[0], *path.parent.relative_to(
        REPO).parts[1:]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [alias.name for alias in node.names]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(REPO)))
def test_core_imports_nothing_of_textual(path):
    assert not [m for m, _ in imports(path) if m.split(".")[0] in ("textual", "textual_plotext")]


@pytest.mark.parametrize("path", TUI, ids=lambda p: str(p.relative_to(REPO)))
def test_the_views_reach_the_engine_only_through_its_faces(path):
    for module, names in imports(path):
        if module == "latency_tui.core":
            assert set(names) <= {"api", "__version__"}, (module, names)
        elif module.startswith("latency_tui.core."):
            assert module.split(".")[2] in TUI_MAY_IMPORT, module


@pytest.mark.parametrize("path", CORE + TUI, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_name_is_imported_across_modules(path):
    for module, names in imports(path):
        if module.startswith("latency_tui"):
            assert not [n for n in names if n.startswith("_") and n != "__version__"], module


@pytest.mark.parametrize("path", CORE + TUI, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_are_of_a_readable_size(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
