"""The wheel holds every package of the source tree (a subpackage left out of pyproject's list
installs fine in editable mode and is missing from a real install)."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Python 3.9 stack
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    declared = set(setuptools["packages"])
    found = set()
    for package, folder in setuptools["package-dir"].items():
        if folder == ".":  # the root package: its own __init__.py; its subpackages map on their own
            found.add(package)
            continue
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *relative.parts]))
    assert found - declared == set()
