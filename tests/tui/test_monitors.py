"""Monitors and the utilisation pane's layout: honest absence, and many cores in columns."""

from __future__ import annotations

from latency_tui.tui.monitors import (
    CpuMonitor,
    MemoryMonitor,
    Reading,
    UnavailableMonitor,
    default_monitors,
)
from latency_tui.tui.widgets.utilisation import render_groups, render_rows


def test_cpu_monitor_says_measuring_before_it_has_an_interval():
    monitor = CpuMonitor()
    first = monitor.poll()
    assert first and all(r.percent is None and r.note == "measuring" for r in first)
    second = monitor.poll()
    assert len(second) == len(first)
    assert all(r.percent is not None and 0 <= r.percent <= 100 for r in second)


def test_memory_monitor_reports_use_and_totals():
    (reading,) = MemoryMonitor().poll()
    assert reading.label == "mem" and 0 < reading.percent <= 100 and "GB" in reading.note


def test_accelerators_without_a_monitor_say_so():
    names = [m.name for m in default_monitors("cuda:0")]
    assert names == ["cpu", "memory", "gpu"]
    (reading,) = UnavailableMonitor("gpu", "no NVIDIA driver").poll()
    assert reading.percent is None and reading.note == "no NVIDIA driver"
    assert [m.name for m in default_monitors("neuron")][-1] == "neuroncore"


def test_rows_show_absence_as_na_with_the_reason_never_zero():
    text = render_rows([Reading("cpu0", 50.0), Reading("gpu", None, "no NVIDIA driver")], 30, 5)
    lines = text.plain.splitlines()
    assert "50%" in lines[0]
    assert "N/A (no NVIDIA driver)" in lines[1] and "0%" not in lines[1]


def test_many_cores_pack_into_columns_then_into_a_strip():
    eight = [Reading(f"cpu{i}", 50.0) for i in range(8)]
    lines = render_groups([("cpu", eight)], 28, 4).plain.splitlines()
    assert len(lines) == 4 and all(len(line) <= 28 for line in lines)
    assert "cpu7" in lines[-1]  # two columns of four
    many = [Reading(f"cpu{i}", float(i)) for i in range(96)]
    memory = [Reading("mem", 13.0, "3.1/23.5 GB")]
    text = render_groups([("cpu", many), ("memory", memory)], 28, 16).plain
    lines = text.splitlines()
    assert lines[0].startswith("cpu0-cpu95 avg 48%")
    assert len(lines) <= 16 and all(len(line) <= 28 for line in lines)
    assert lines[-1].startswith("mem")
