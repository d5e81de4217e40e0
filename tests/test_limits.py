"""Limits checked at planning: what a plan may ask of this host is refused with one line naming
the field, before anything runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from latency_tui.core.errors import UserError
from latency_tui.core.limits import MAX_INTRA_THREADS, check_plan_limits
from latency_tui.core.plan import build_plan
from latency_tui.core.presets import parse_preset

SCRIPT = [str(Path(sys.executable).with_name("latency-tui"))]


def preset_text(threads):
    return textwrap.dedent(f"""
        [model]
        source = "builtin:noop"
        [run]
        device = "fake"
        threads_per_copy = {threads}
        duration_s = 0.2
    """)


@pytest.mark.parametrize("threads", [MAX_INTRA_THREADS + 1, 100_000, 2 ** 40])
def test_threads_per_copy_beyond_the_limit_is_refused_at_planning(threads):
    preset = parse_preset(preset_text(threads), name="t", path=None, origin="file",
                          where="t.toml")
    with pytest.raises(UserError) as caught:
        build_plan(preset)
    assert str(caught.value) == (f"preset t: run.threads_per_copy: {threads:,} threads per copy "
                                 f"is not between 1 and {MAX_INTRA_THREADS:,}")


def test_threads_per_copy_within_the_limit_is_planned():
    preset = parse_preset(preset_text(4), name="t", path=None, origin="file", where="t.toml")
    assert build_plan(preset).configs[0].threads_per_copy == 4
    check_plan_limits(batch_sizes=(1,), copies=(1,), workers=(1,), copy_mode="thread",
                      source="builtin:noop", threads_per_copy=MAX_INTRA_THREADS)


def test_a_preset_asking_2_to_the_40_threads_exits_2_with_one_line(tmp_path):
    """It was accepted, then failed mid-run with "Overflow when unpacking long"."""
    path = tmp_path / "huge.toml"
    path.write_text(preset_text(2 ** 40))
    proc = subprocess.run([*SCRIPT, "run", "--preset", str(path), "--json",
                           str(tmp_path / "s.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.threads_per_copy: 1,099,511,627,776 threads" in lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "s.json").exists()
