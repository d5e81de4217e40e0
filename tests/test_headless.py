"""The headless progress display's pure parts."""

from __future__ import annotations

import pytest

from latency_tui.core.api import Reading
from latency_tui.tui.headless import utilisation_text


def group(name, *pairs):
    return (name, [Reading(label, value, "") for label, value in pairs])


@pytest.mark.parametrize("groups, expected", [
    ([], ""),
    ([group("cpu", ("cpu", 87.0), ("cpu0", 80.0), ("cpu1", 94.0)), group("memory", ("mem", 41.0))],
     ", cpu 87%, mem 41%"),
    ([group("cpu", ("cpu0", 50.0))], ", cpu0 50%"),
    # Every GPU, not the first one only.
    ([group("gpu", ("gpu0", 91.0), ("gpu1", 88.0))], ", gpu0 91%, gpu1 88%"),
    # Absent readings are left out, never shown as 0 %.
    ([group("gpu", ("gpu0", None), ("gpu1", 88.0))], ", gpu1 88%"),
    ([group("neuroncore", ("neuroncore", None))], ""),
    # Sixteen NeuronCores fit one line.
    ([group("neuroncore", *[(f"nc{i}", float(i * 5)) for i in range(16)])],
     ", neuroncore x16 mean 38% max 75%"),
])
def test_the_progress_line_shows_every_device_or_their_mean_and_max(groups, expected):
    assert utilisation_text(groups) == expected
