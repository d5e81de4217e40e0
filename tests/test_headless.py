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
    # A monitor that cannot be read at all says so, not nothing; one still starting says nothing.
    ([("gpu", [Reading("gpu", None, "nvidia-ml-py is not installed")])], ", gpu n/a"),
    ([("gpu", [Reading("gpu", None, "starting")])], ""),
    # Sixteen NeuronCores fit one line.
    ([group("neuroncore", *[(f"nc{i}", float(i * 5)) for i in range(16)])],
     ", neuroncore x16 mean 38% max 75%"),
])
def test_the_progress_line_shows_every_device_or_their_mean_and_max(groups, expected):
    assert utilisation_text(groups) == expected


def progress_line(**fields):
    import io

    from latency_tui.core.events import Progress
    from latency_tui.tui.headless import ProgressDisplay

    stream = io.StringIO()
    display = ProgressDisplay(stream, live=False)
    display(Progress(index=0, elapsed_s=2.0, samples=4000, fraction=0.5, **fields))
    return stream.getvalue()


def test_the_progress_line_says_how_close_early_stop_is():
    line = progress_line(early_stop=7.24, early_stop_target=5.0)
    assert "measuring  50%, 4,000 inferences, 2.0 s, 2,000 inf/s, p99 +-7.2 % (stops at 5 %)" \
        in line
    assert "p99 not bounded yet (stops at 5 %)" in progress_line(early_stop_target=5.0)
    assert "p99" not in progress_line()  # early stop off, or an older engine's event


def test_an_older_progress_event_without_the_early_stop_fields_still_shows():
    from types import SimpleNamespace

    from latency_tui.tui.headless import early_stop_text

    assert early_stop_text(SimpleNamespace(index=0, elapsed_s=1.0, samples=1)) == ""
