"""Monitors in core (honest absence, their own interval, a summary per configuration) and the
utilisation pane's layout of what they read."""

from __future__ import annotations

import time

import pytest

from latency_tui.core.monitors import (
    CpuMonitor,
    MemoryMonitor,
    MonitorSampler,
    Reading,
    StaticMonitor,
    UnavailableMonitor,
    default_monitors,
    poll_all,
    summarise,
)
from latency_tui.tui.widgets.utilisation import render_groups, render_rows


def test_cpu_monitor_says_measuring_before_it_has_an_interval(monkeypatch):
    monitor = CpuMonitor()
    frozen = monitor._previous = monitor._times()
    monkeypatch.setattr(monitor, "_times", lambda: frozen)  # no kernel tick since the last read
    first = monitor.poll()
    assert first and all(r.percent is None and r.note == "measuring" for r in first)
    monkeypatch.undo()
    time.sleep(0.05)
    second = monitor.poll()
    assert all(r.percent is not None and 0 <= r.percent <= 100 for r in second)
    assert second[0].label == "cpu" or len(second) == 1  # all cores first, then each


def test_two_cpu_monitors_keep_their_own_intervals():
    """psutil's own cpu_percent keeps one module-wide interval: the engine's monitor and the
    TUI's would each see the other's slice."""
    a, b = CpuMonitor(), CpuMonitor()
    for _ in range(3):
        time.sleep(0.05)
        assert all(r.percent is not None for r in a.poll())
        assert all(r.percent is not None for r in b.poll())


def test_memory_monitor_reports_use_and_totals():
    (reading,) = MemoryMonitor().poll()
    assert reading.label == "mem" and 0 < reading.percent <= 100 and "GB" in reading.note
    assert dict(reading.metrics)["used_gb"] > 0


def test_accelerators_without_a_monitor_say_so():
    names = [m.name for m in default_monitors("cuda:0")]
    assert names == ["cpu", "memory", "gpu"]
    (reading,) = UnavailableMonitor("gpu", "no NVIDIA driver").poll()
    assert reading.percent is None and reading.note == "no NVIDIA driver"
    assert [m.name for m in default_monitors("neuron")][-1] == "neuroncore"


def test_a_monitor_that_raises_reads_as_absent_with_the_reason():
    class Broken:
        name = "broken"

        def poll(self):
            raise OSError("device vanished")

    (name, rows), = poll_all([Broken()])
    assert name == "broken" and rows[0].percent is None and "device vanished" in rows[0].note


@pytest.mark.parametrize("frames, expected", [
    ([], {}),
    ([[("cpu", [Reading("cpu", 10.0)])], [("cpu", [Reading("cpu", 30.0)])]],
     {"cpu": {"mean": 20.0, "max": 30.0, "samples": 2}}),
    ([[("gpu", [Reading("gpu0", None, "no NVIDIA driver")])]],
     {"gpu0": {"absent": "no NVIDIA driver"}}),
    ([[("gpu", [Reading("gpu0", None, "starting")])], [("gpu", [Reading("gpu0", 50.0)])]],
     {"gpu0": {"mean": 50.0, "max": 50.0, "samples": 1}}),
    ([[("mem", [Reading("mem", 40.0, metrics=(("used_gb", 3.0),))])],
      [("mem", [Reading("mem", 60.0, metrics=(("used_gb", 5.0),))])]],
     {"mem": {"mean": 50.0, "max": 60.0, "samples": 2, "used_gb": {"mean": 4.0, "max": 5.0}}}),
])
def test_summarise(frames, expected):
    assert summarise(frames) == expected


def test_the_sampler_reads_in_its_own_thread_and_summarises_a_window():
    sampler = MonitorSampler([StaticMonitor("cpu", [Reading("cpu", 42.0)])], period_s=0.02)
    sampler.start()
    try:
        sampler.begin()
        time.sleep(0.2)
        summary = sampler.end()
        assert summary["cpu"]["mean"] == 42.0 and summary["cpu"]["samples"] >= 3
        assert sampler.latest() is not None
    finally:
        sampler.close()


def test_a_window_shorter_than_the_period_gets_the_newest_frame_not_nothing():
    sampler = MonitorSampler([StaticMonitor("nc0", [Reading("nc0", 80.0)])], period_s=30)
    sampler.start()
    try:
        deadline = time.monotonic() + 10
        while sampler.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        sampler.begin()  # the next frame is 30 s away: this window catches none
        assert sampler.end()["nc0"] == {"mean": 80.0, "max": 80.0, "samples": 1}
    finally:
        sampler.close()


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
