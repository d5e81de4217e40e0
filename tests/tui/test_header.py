"""The header's first line keeps what is measured on screen at every width: the model's name
gives way first, then the labels."""

from __future__ import annotations

import pytest

from latency_tui.tui.widgets.header import HeaderInfo, render_header

INFO = HeaderInfo(preset="cpu-mlp", model="tabular-mlp (3.4k params, 13.6 kB)", device="cpu",
                  batch="1,8", parallel="2 x 4", mode="threads")


@pytest.mark.parametrize("width", [78, 98, 118])
def test_batch_copies_workers_and_mode_always_fit(width):
    line = render_header(INFO, width).plain.split("\n")[0]
    assert len(line) <= width
    assert "batch 1,8" in line and "cpu-mlp" in line and "tabular-" in line
    assert line.endswith("2 x 4 in threads") or line.endswith("copies 2 x workers 4 in threads")


def test_a_wide_terminal_keeps_every_label_and_the_whole_model():
    line = render_header(INFO, 200).plain.split("\n")[0]
    assert "preset cpu-mlp  model tabular-mlp (3.4k params, 13.6 kB)  device cpu" in line
    assert line.endswith("copies 2 x workers 4 in threads")
