"""NeuronMonitor against a fake ``neuron-monitor`` on PATH that replays real reports
(tests/fixtures/neuron/) every 0.1 s: what poll() says in each state, and that close() leaves no
process and no configuration file behind."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from latency_tui.core.monitors import MonitorSampler, Reading, poll_all
from latency_tui.core.monitors.sampler import utilisation_warnings
from latency_tui.core.monitors.neuron import GARBAGE_NOTE_AFTER, NeuronMonitor
from latency_tui.core.neuron.tools import NOT_INSTALLED, monitor_config

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the fake neuron-monitor is a #! script")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "neuron"
INF1 = (FIXTURES / "neuron-monitor-inf1.xlarge-4procs.jsonl").read_text(encoding="utf-8").strip()
IDLE = (FIXTURES / "neuron-monitor-trn1.2xlarge-idle.jsonl").read_text(encoding="utf-8").strip()
INF1_UTILISATION = [2.926414908153532, 3.0803098003189486, 2.517060487060293, 2.488352186334406]
CORE_MB = (61766864 + 1295008 + 43216) / 1e6
HOST_MB = 4 * 2605992 / 1e6  # the four runtimes' host memory
#: The reading for all the cores: their mean utilisation, and the runtimes' own figures.
INF1_SUMMARY = Reading("nc", sum(INF1_UTILISATION) / 4, "4 runtimes, 187 executions, host 10 MB",
                       (("executions", 187.0), ("execution_errors", 0.0), ("runtimes", 4.0),
                        ("host_memory_mb", round(HOST_MB, 3))))

FAKE = """\
import json, os, signal, sys, time
here = {here!r}
config = None
if len(sys.argv) == 3 and sys.argv[1] == "-c":
    with open(sys.argv[2], encoding="utf-8") as f:
        config = json.load(f)
with open(os.path.join(here, "calls.jsonl"), "a", encoding="utf-8") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "config": config, "pid": os.getpid()}}) + "\\n")
if {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep({delay})
with open(os.path.join(here, "lines.json"), encoding="utf-8") as f:
    lines = json.load(f)
printed = 0
while True:
    for line in lines:
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()
        printed += 1
        if printed == {hang_after}:
            time.sleep(60)
        if printed == {stop_after}:
            sys.stderr.write("fake neuron-monitor: giving up\\n")
            sys.stderr.flush()
            if {die_by_signal}:
                os.kill(os.getpid(), signal.SIGKILL)
            sys.exit({exit_code})
        time.sleep(0.1)
"""


@pytest.fixture
def fake_monitor(tmp_path, monkeypatch):
    """Install a fake neuron-monitor (first and only on PATH); returns a factory of monitors,
    every one of them closed at the end of the test."""
    made = []
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def install(lines, *, delay=0.0, stop_after=0, hang_after=0, exit_code=0, die_by_signal=False,
                ignore_term=False, **options) -> NeuronMonitor:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        (tmp_path / "lines.json").write_text(json.dumps(lines), encoding="utf-8")
        script = folder / "neuron-monitor"
        script.write_text(f"#!{sys.executable}\n" + FAKE.format(
            here=str(tmp_path), delay=delay, stop_after=stop_after, hang_after=hang_after,
            exit_code=exit_code, die_by_signal=die_by_signal, ignore_term=ignore_term), encoding="utf-8")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", str(folder))
        monitor = NeuronMonitor(**options)
        made.append(monitor)
        return monitor

    yield install
    for monitor in made:
        monitor.close()


def calls(tmp_path):
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] \
        if path.exists() else []


def poll_until(monitor, condition, timeout=5.0):
    """Poll until ``condition(readings)`` holds; fail, with the last readings, after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        readings = monitor.poll()
        if condition(readings):
            return readings
        if time.monotonic() > deadline:
            pytest.fail(f"no such readings after {timeout} s; last: {readings}")
        time.sleep(0.02)


def cores(readings):
    return [r.label for r in readings] == ["nc", "nc0", "nc1", "nc2", "nc3"]


def assert_gone(pid):
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_replayed_reports_read_per_core_and_close_leaves_nothing(fake_monitor, tmp_path):
    monitor = fake_monitor([INF1, INF1], delay=0.3)
    assert monitor.poll() == [Reading("neuroncore", None, "starting neuron-monitor")]
    readings = poll_until(monitor, cores)
    assert readings == [INF1_SUMMARY] + [
        Reading(f"nc{i}", value, "63 MB", (("device_memory_mb", round(CORE_MB, 3)),))
        for i, value in enumerate(INF1_UTILISATION)]
    (call,) = calls(tmp_path)
    assert call["argv"][0] == "-c" and call["config"] == monitor_config(1.0)
    config_file = Path(call["argv"][1])
    assert config_file.parent == tmp_path / "tmp"
    report = monitor.latest()
    assert report is not None and report.completed == 187 and report.runtimes == 4
    started = time.perf_counter()
    for _ in range(100):
        monitor.poll()
    assert time.perf_counter() - started < 0.5  # never waits for the subprocess
    monitor.close()
    assert_gone(call["pid"])
    assert not config_file.exists() and list((tmp_path / "tmp").iterdir()) == []
    assert monitor.poll() == [Reading("neuroncore", None, "neuron-monitor closed")]
    monitor.close()  # twice is fine


def test_a_monitor_that_dies_says_so_with_its_code(fake_monitor, tmp_path):
    monitor = fake_monitor([INF1], stop_after=2, exit_code=3)
    readings = poll_until(monitor, lambda rs: rs[0].percent is None and "exited" in rs[0].note)
    assert readings == [Reading("neuroncore", None,
                                "neuron-monitor exited (code 3); fake neuron-monitor: giving up")]
    assert monitor.latest() is not None  # the last report is still there for whoever wants it
    monitor.close()
    assert_gone(calls(tmp_path)[0]["pid"])


def test_a_monitor_killed_by_a_signal_says_which(fake_monitor):
    monitor = fake_monitor([INF1], stop_after=1, die_by_signal=True)
    readings = poll_until(monitor, lambda rs: "exited" in rs[0].note)
    assert readings[0].note.startswith("neuron-monitor exited (killed by signal 9)")


def test_garbage_lines_are_skipped_counted_and_then_mentioned(fake_monitor):
    garbage = ["not json", "{\"neuron_runtime_data\": [", "[1, 2]", "\"a string\"", "\x00\x1b[2J", "null"]
    monitor = fake_monitor([INF1] + garbage + [INF1])
    poll_until(monitor, cores)
    readings = poll_until(monitor, lambda rs: monitor.garbage_lines >= GARBAGE_NOTE_AFTER and cores(rs))
    assert [r.percent for r in readings[1:]] == INF1_UTILISATION
    assert all(r.note.startswith("63 MB; ") and "unreadable lines from neuron-monitor skipped" in r.note
               for r in readings[1:])
    assert "unreadable lines from neuron-monitor skipped" in readings[0].note


def test_only_idle_reports_read_as_no_runtime_attached(fake_monitor):
    monitor = fake_monitor([IDLE])
    expected = [Reading("neuroncore", None, "no runtime attached")]
    assert poll_until(monitor, lambda rs: rs == expected) == expected
    report = monitor.latest()
    assert report is not None and report.instance_type == "trn1.2xlarge" and report.cores == {}


def test_a_missing_executable_is_named_and_leaves_no_file(fake_monitor, tmp_path, monkeypatch):
    monitor = fake_monitor([INF1])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    expected = [Reading("neuroncore", None, f"neuron-monitor not found: {NOT_INSTALLED}")]
    assert monitor.poll() == expected
    assert monitor.poll() == expected  # and it does not try again at every poll
    assert list((tmp_path / "tmp").iterdir()) == [] and calls(tmp_path) == []


def test_a_monitor_that_cannot_start_says_why():
    def popen(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monitor = NeuronMonitor(popen=popen)
    (reading,) = monitor.poll()
    assert reading.percent is None and reading.note.startswith("neuron-monitor could not start: ")
    monitor.close()


def test_close_kills_a_monitor_that_ignores_sigterm(fake_monitor, tmp_path):
    monitor = fake_monitor([INF1], ignore_term=True)
    poll_until(monitor, cores)
    started = time.monotonic()
    monitor.close()
    assert 1.5 < time.monotonic() - started < 6.0  # SIGTERM, a 2 s grace, then SIGKILL
    assert_gone(calls(tmp_path)[0]["pid"])


def test_a_stale_report_reads_as_absent(fake_monitor):
    now = [1000.0]
    monitor = fake_monitor([INF1], hang_after=1, clock=lambda: now[0])
    poll_until(monitor, cores)
    now[0] += 60.0
    (reading,) = monitor.poll()
    assert reading.percent is None and reading.note.startswith("no report from neuron-monitor for")


def test_it_works_as_an_engine_monitor(fake_monitor, tmp_path):
    monitor = fake_monitor([INF1])
    assert poll_all([monitor])[0][0] == "neuroncore"
    poll_until(monitor, cores)
    sampler = MonitorSampler([monitor], period_s=0.05).start()
    sampler.begin()
    time.sleep(0.3)
    summary = sampler.end()
    sampler.close()  # closes the monitor too
    assert summary["nc1"]["mean"] == pytest.approx(round(INF1_UTILISATION[1], 2))
    assert summary["nc1"]["device_memory_mb"]["max"] == pytest.approx(round(CORE_MB, 3))
    assert_gone(calls(tmp_path)[0]["pid"])


def test_the_fake_is_really_gone_not_a_zombie(fake_monitor, tmp_path):
    monitor = fake_monitor([INF1])
    poll_until(monitor, cores)
    pid = calls(tmp_path)[0]["pid"]
    monitor.close()
    with pytest.raises(ChildProcessError):  # already reaped by close()
        os.waitpid(pid, os.WNOHANG)


def inf1_with(*, seconds=None, completed=None, failed=0, instance=None) -> dict:
    """The inf1 report with every runtime's latency percentiles at ``seconds``, ``completed``
    and ``failed`` (completed_with_err) executions each, and another instance type."""
    report = json.loads(INF1)
    for entry in report["neuron_runtime_data"]:
        stats = entry["report"]["execution_stats"]
        if seconds is not None:
            stats["latency_stats"] = {f"{side}_latency": {key: seconds for key in (
                "p0", "p1", "p25", "p50", "p75", "p99", "p100")} for side in ("total", "device")}
        if completed is not None:
            stats["execution_summary"]["completed"] = completed
        stats["execution_summary"]["completed_with_err"] = failed
    if instance is not None:
        report["instance_info"]["instance_type"] = instance
    return report


def test_runtime_figures_reach_the_summary_and_failed_executions_warn(fake_monitor):
    monitor = fake_monitor([json.dumps(inf1_with(failed=2))])
    poll_until(monitor, cores)
    sampler = MonitorSampler([monitor], period_s=0.05).start()
    try:
        sampler.begin()
        time.sleep(0.3)
        summary = sampler.end()
    finally:
        sampler.close()
    entry = summary["nc"]
    assert entry["mean"] == pytest.approx(round(sum(INF1_UTILISATION) / 4, 2))
    assert entry["executions"] == {"mean": 187.0, "max": 187.0}
    assert entry["execution_errors"] == {"mean": 8.0, "max": 8.0}  # 2 in each of 4 runtimes
    assert entry["host_memory_mb"]["max"] == pytest.approx(round(HOST_MB, 3))
    (warning,) = utilisation_warnings(summary)
    assert warning.startswith("nc: the Neuron runtime reported failed executions") and "8" in warning
    assert utilisation_warnings({"nc": dict(entry, execution_errors={"mean": 0, "max": 0})}) == []


class PipeMonitor:
    """A neuron-monitor process whose reports the test writes itself, one at a time (the
    ``popen`` NeuronMonitor is given): what arrives when is then up to the test."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.stdout = os.fdopen(read, "r", encoding="utf-8")
        self.stderr = iter(())
        self.returncode = None
        self._write = os.fdopen(write, "w", encoding="utf-8")

    def __call__(self, argv, **kwargs) -> "PipeMonitor":
        return self

    def send(self, report: dict, monitor: NeuronMonitor) -> None:
        self._write.write(json.dumps(report) + "\n")
        self._write.flush()
        deadline = time.monotonic() + 5
        while monitor.latest() is None or monitor.latest().completed != sum(
                e["report"]["execution_stats"]["execution_summary"]["completed"]
                for e in report["neuron_runtime_data"]):
            assert time.monotonic() < deadline, "the report was not read"
            time.sleep(0.01)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def terminate(self) -> None:
        self.returncode = -15
        if not self._write.closed:
            self._write.close()

    kill = terminate


def test_details_describe_the_measuring_window_only(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    process = PipeMonitor()
    monitor = NeuronMonitor(popen=process)
    sampler = MonitorSampler([monitor])  # not started: begin and end are what is tested
    try:
        monitor.start()
        process.send(inf1_with(seconds=0.009, completed=1), monitor)  # before: warm-up
        sampler.begin()
        process.send(inf1_with(seconds=0.002, completed=10, failed=1), monitor)
        process.send(inf1_with(seconds=0.003, completed=20, instance="inf1.6xlarge"), monitor)
        sampler.end()
        process.send(inf1_with(seconds=0.007, completed=30), monitor)  # after: the next one
        details = sampler.details()
    finally:
        sampler.close()
    assert details["runtime_latency_ms"]["total"]["p50"] == pytest.approx(3.0)
    assert details["runtime_latency_ms"]["device"]["p99"] == pytest.approx(3.0)
    assert details["runtime_latency_reports"] == 2
    assert details["runtime_executions"] == {"completed": 4 * 30, "failed": 4, "reports": 2}
    assert details["instance_type"] == "inf1.6xlarge"


def test_a_window_without_reports_gives_no_latency_and_no_window_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    process = PipeMonitor()
    monitor = NeuronMonitor(popen=process)
    try:
        monitor.start()
        process.send(inf1_with(seconds=0.004, completed=5), monitor)
        newest = monitor.details()  # never begun: the newest report
        assert newest["runtime_latency_ms"]["total"]["p0"] == pytest.approx(4.0)
        assert newest["runtime_latency_reports"] == 1 and newest["instance_type"] == "inf1.xlarge"
        monitor.begin()
        monitor.end()
        assert monitor.details() == {"instance_type": "inf1.xlarge"}  # not the warm-up's figures
    finally:
        monitor.close()
