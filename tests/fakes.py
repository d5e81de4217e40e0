"""Backends the tests register under their own device kinds (importable by name, as a copy
process imports its backend)."""

from __future__ import annotations

from latency_tui.core.backends.fake import FakeBackend


class ProcessOnly(FakeBackend):
    """A device whose copies can only be processes (as Neuron's)."""

    name = "procsonly"
    copy_modes = ("process",)
