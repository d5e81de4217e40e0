"""NeuronCore utilisation from ``neuron-monitor``, which streams one JSON report per line.

The tool is a long-running subprocess that reports once a period, so this monitor keeps a
reader thread of its own: ``poll()`` only hands back what the newest report said, and never
waits. Whatever goes wrong (no tools, no runtime attached, the tool died, a line that is not a
report) reads as an absent value with the reason, never as 0 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..neuron.tools import NOT_INSTALLED, MonitorReport, monitor_config, parse_monitor_line
from ..text import single_line
from .base import Reading

#: Unreadable lines from neuron-monitor are skipped; from this many on, the readings say so.
GARBAGE_NOTE_AFTER = 5
#: A line longer than this is not a report one can use (64 runtimes x 64 cores is far less).
MAX_LINE = 16 * 1024 * 1024
#: How long close() lets neuron-monitor end after SIGTERM before it is killed.
TERMINATE_GRACE_S = 2.0


class NeuronMonitor:
    """Per-NeuronCore readings (``nc0``, ``nc1``, ...) from a ``neuron-monitor`` subprocess,
    after one for them all (``nc``: their mean utilisation, with the runtimes' figures as its
    metrics: host memory, executions and failed executions in the report's period).

    Started on the first ``poll()`` (or by ``start()``), with a configuration file of its own
    (``monitor_config``: every runtime, a report every ``period_s``), and ended by ``close()``.
    A report older than ``stale_after_s`` (default five periods, at least 5 s) reads as absent:
    a tool that stopped reporting must not leave its last figures on the screen as if current.
    """

    name = "neuroncore"

    def __init__(self, executable: str = "neuron-monitor", period_s: float = 1.0,
                 popen: Callable[..., Any] = subprocess.Popen, *,
                 stale_after_s: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.executable = executable
        self.period_s = period_s
        self.stale_after_s = stale_after_s if stale_after_s is not None else max(5.0, 5 * period_s)
        self._config = monitor_config(period_s)
        self._popen = popen
        self._clock = clock
        self._lock = threading.Lock()
        self._process: Any = None
        self._config_path: Optional[str] = None
        self._threads: List[threading.Thread] = []
        self._problem: Optional[str] = None  # why it could not start, or how it ended
        self._closed = False
        self._latest: Optional[MonitorReport] = None
        self._latest_at = 0.0
        self._garbage = 0
        self._stderr_tail = ""
        self._window: Optional[Dict[str, Any]] = None  # what the reports since begin() said
        self._kept: Optional[Dict[str, Any]] = None  # the same of the last window, at end()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "NeuronMonitor":
        """Start neuron-monitor if it is not running yet; a failure is kept as the reason."""
        with self._lock:
            if self._process is not None or self._problem is not None or self._closed:
                return self
            try:
                handle, self._config_path = tempfile.mkstemp(prefix="latency-tui-neuron-monitor-",
                                                             suffix=".json")
                with os.fdopen(handle, "w", encoding="utf-8") as config:
                    json.dump(self._config, config)
                self._process = self._popen(
                    [self.executable, "-c", self._config_path], stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                    # Its own session: a ^C meant for latency-tui does not end it mid-run (close()
                    # does); and should latency-tui die, its next report hits a closed pipe.
                    errors="replace", start_new_session=True)
            except FileNotFoundError:
                self._problem = f"{self.executable} not found: {NOT_INSTALLED}"
            except OSError as exc:
                self._problem = f"{self.executable} could not start: {single_line(exc, 200)}"
            if self._process is None:
                self._remove_config()
                return self
            for target, stream in ((self._read_reports, self._process.stdout),
                                   (self._read_stderr, self._process.stderr)):
                thread = threading.Thread(target=target, args=(stream,), daemon=True,
                                          name=f"latency-tui-{self.name}-{target.__name__[1:]}")
                thread.start()
                self._threads.append(thread)
        return self

    def close(self) -> None:
        """End neuron-monitor (SIGTERM, then SIGKILL after ``TERMINATE_GRACE_S``) and remove its
        configuration file. Safe to call twice, and before ``start``."""
        with self._lock:
            self._closed = True
            process = self._process
        if process is not None and process.poll() is None:
            for end in (process.terminate, process.kill):
                try:
                    end()
                    process.wait(TERMINATE_GRACE_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except OSError:
                    break
        for thread in self._threads:
            thread.join(1.0)
        if process is not None and not any(thread.is_alive() for thread in self._threads):
            for stream in (process.stdout, process.stderr):  # a reader still in it would block
                try:
                    stream.close()
                except (OSError, AttributeError):
                    pass
        with self._lock:
            self._remove_config()

    def __enter__(self) -> "NeuronMonitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------

    def begin(self) -> None:
        """A measuring window starts (``MonitorSampler.begin``): keep the reports from now on."""
        with self._lock:
            self._window, self._kept = _tally([]), None

    def end(self) -> None:
        """The measuring window ends (``MonitorSampler.end``): ``details()`` describes it."""
        with self._lock:
            self._kept, self._window = self._window or _tally([]), None

    def details(self) -> Dict[str, Any]:
        """For the configuration's result, once its measuring window ended:

        - ``runtime_latency_ms``: the Neuron runtime's own latency percentiles (ms, ``total``
          and ``device`` side, so that a user sees what the host adds), from the *last* report
          of the window that had any. A report covers one monitor period (1 s) before it
          arrived, so these are the percentiles of that period's executions, not of the whole
          window (the runtime does not report the samples that would let one pool them);
        - ``runtime_latency_reports``: how many of the window's reports had percentiles;
        - ``runtime_executions``: executions ``completed`` and ``failed``, summed over the
          window's reports (each counts its own period), and how many ``reports`` there were;
        - ``instance_type``, from neuron-monitor's ``instance_info``, when a report says.

        A window that caught no report gives no latency (not one from before it). Without a
        window (``begin`` never called) the newest report stands for one."""
        with self._lock:
            window = self._kept if self._kept is not None else _tally(
                [self._latest] if self._latest is not None else [])
            newest = self._latest
        out: Dict[str, Any] = {}
        if window["latency_ms"]:
            out["runtime_latency_ms"] = window["latency_ms"]
            out["runtime_latency_reports"] = window["timed"]
        if window["reports"]:
            out["runtime_executions"] = {key: window[key]
                                         for key in ("completed", "failed", "reports")}
        instance = window["instance_type"] or (newest.instance_type if newest else None)
        if instance:
            out["instance_type"] = instance
        return out

    def latest(self) -> Optional[MonitorReport]:
        """The newest report (the runtimes' own latency percentiles are in it), or None."""
        with self._lock:
            return self._latest

    @property
    def garbage_lines(self) -> int:
        """How many lines from neuron-monitor were skipped as unreadable."""
        with self._lock:
            return self._garbage

    def poll(self) -> List[Reading]:
        self.start()
        with self._lock:
            report, problem, at = self._latest, self._problem, self._latest_at
            garbage, closed = self._garbage, self._closed
        skipped = f"{garbage} unreadable lines from neuron-monitor skipped" \
            if garbage >= GARBAGE_NOTE_AFTER else ""
        if problem is not None:
            return [self._absent(problem)]
        if closed:
            return [self._absent("neuron-monitor closed")]
        if report is None:
            return [self._absent(_join("starting neuron-monitor", skipped))]
        age = self._clock() - at
        if age > self.stale_after_s:
            return [self._absent(_join(f"no report from neuron-monitor for {age:.0f} s", skipped))]
        if report.runtimes == 0:
            return [self._absent(_join("no runtime attached", skipped))]
        if not report.cores:
            return [self._absent(_join("the runtimes report no NeuronCore", skipped))]
        readings = [self._summary(report, skipped)]
        for core, figures in report.cores.items():
            megabytes = None if figures.device_memory_bytes is None else figures.device_memory_bytes / 1e6
            note = "" if megabytes is None else f"{megabytes:.0f} MB"
            if figures.utilisation is None:
                note = _join(note, "no utilisation reported")
            metrics = () if megabytes is None else (("device_memory_mb", round(megabytes, 3)),)
            readings.append(Reading(f"nc{core}", figures.utilisation, _join(note, skipped), metrics))
        return readings

    def _summary(self, report: MonitorReport, skipped: str) -> Reading:
        """``nc``: the cores' mean utilisation, and what the runtimes report as a whole."""
        known = [f.utilisation for f in report.cores.values() if f.utilisation is not None]
        metrics = [("executions", float(report.completed)),
                   ("execution_errors", float(report.errors)), ("runtimes", float(report.runtimes))]
        note = f"{report.runtimes} runtime{'s' if report.runtimes != 1 else ''}, " \
               f"{report.completed} executions"
        if report.errors:
            note += f", {report.errors} failed"
        if report.host_memory_bytes is not None:
            metrics.append(("host_memory_mb", round(report.host_memory_bytes / 1e6, 3)))
            note += f", host {report.host_memory_bytes / 1e6:.0f} MB"
        return Reading("nc", sum(known) / len(known) if known else None,
                       _join(note, "" if known else "no utilisation reported", skipped),
                       tuple(metrics))

    def _absent(self, why: str) -> Reading:
        return Reading(self.name, None, why)

    # -- the reader threads -----------------------------------------------------------------

    def _read_reports(self, stream: Any) -> None:
        try:
            while True:
                line = stream.readline(MAX_LINE)
                if not line:
                    break
                if not line.endswith("\n") and len(line) >= MAX_LINE:
                    while line and not line.endswith("\n"):  # the rest of an overlong line
                        line = stream.readline(MAX_LINE)
                    self._count_garbage()
                    continue
                if not line.strip():
                    continue
                try:
                    report = parse_monitor_line(line)
                except Exception:  # any line that is not a report is skipped, and counted
                    self._count_garbage()
                    continue
                with self._lock:
                    self._latest, self._latest_at = report, self._clock()
                    if self._window is not None:
                        _count(self._window, report)
        except (OSError, ValueError):  # the pipe closed under us (close() during a read)
            pass
        self._ended()

    def _read_stderr(self, stream: Any) -> None:
        try:
            for line in stream:
                if line.strip():
                    with self._lock:
                        self._stderr_tail = single_line(line.strip(), 200)
        except (OSError, ValueError):
            pass

    def _count_garbage(self) -> None:
        with self._lock:
            self._garbage += 1

    def _ended(self) -> None:
        """stdout is closed: the process ended (or is ending); say how, unless close() did it."""
        process = self._process
        try:
            code = process.wait(TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:  # closed its stdout and went on living: still useless
            code = None
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(0.5)  # the last stderr line, if it is on its way
        with self._lock:
            if self._closed:
                return
            how = "closed its output" if code is None else (
                f"killed by signal {-code}" if code < 0 else f"code {code}")
            self._problem = _join(f"neuron-monitor exited ({how})", self._stderr_tail)

    def _remove_config(self) -> None:
        if self._config_path is not None:
            try:
                os.unlink(self._config_path)
            except OSError:
                pass
            self._config_path = None


def _tally(reports: List[MonitorReport]) -> Dict[str, Any]:
    """What ``details()`` needs of a window's reports, kept as they arrive (not the reports:
    a long window at one report a second would hold thousands)."""
    tally: Dict[str, Any] = {"reports": 0, "completed": 0, "failed": 0, "timed": 0,
                             "latency_ms": {}, "instance_type": None}
    for report in reports:
        _count(tally, report)
    return tally


def _count(tally: Dict[str, Any], report: MonitorReport) -> None:
    tally["reports"] += 1
    tally["completed"] += report.completed
    tally["failed"] += report.errors
    if report.latency_ms:
        tally["timed"] += 1
        tally["latency_ms"] = report.latency_ms
    tally["instance_type"] = report.instance_type or tally["instance_type"]


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
