"""Host noise on the timeline: the seconds in which the host was busy, found from load readings
at known times (a fake psutil and clock), recorded in the result, and marked under the TUI's
timeline for a saved session and a live run; a session without them draws no marks."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

from latency_tui.core.events import ConfigFinished, PhaseChanged, Progress, Utilisation
from latency_tui.core.measurement import ConfigResult, Throughput, Timeline
from latency_tui.core.noise import HostProbe
from latency_tui.core.noisemarks import MarkedNoiseWatch, busy_seconds
from latency_tui.core.recorder import SessionRecorder
from latency_tui.core.session import Session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.tui.widgets.timeline import BusyMarks, marked_columns

from .conftest import SIZE, finish_run

THROTTLES = "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count"


class FakePsutil:
    """Two CPUs whose busy time, ours and the clock a test moves by hand."""

    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal")

    def __init__(self):
        self.busy = self.own = 0.0
        self.now = 100.0

    def cpu_count(self):
        return 2

    def cpu_times(self):
        return self.Times(self.busy, 0, 0, 1000, 0, 0, 0, 0.0)

    def virtual_memory(self):
        return SimpleNamespace(available=50.0, total=100.0)

    def Process(self, pid):  # noqa: N802 - psutil's name
        fake = self
        return SimpleNamespace(pid=pid, children=lambda recursive=False: [],
                               cpu_times=lambda: SimpleNamespace(user=fake.own, system=0.0))

    def advance(self, seconds, others_cpus):
        """``seconds`` pass with our copy on one CPU and others on ``others_cpus``."""
        self.now += seconds
        self.own += seconds
        self.busy += seconds * (1.0 + others_cpus)


def result(seconds=6, noise=None):
    p99 = tuple(5.0 for _ in range(seconds))
    details = {"threads_per_copy": 1}
    if noise is not None:
        details["noise"] = noise
    return ConfigResult(RunConfig(device="fake"), "finished", samples=100 * seconds,
                        duration_s=float(seconds), throughput=Throughput(100.0, 100.0),
                        timeline=Timeline(1.0, (100,) * seconds, p99, p99, p99),
                        details=details)


def test_readings_above_the_bar_at_known_times_give_their_seconds(tmp_path):
    counter = tmp_path / THROTTLES
    counter.parent.mkdir(parents=True)
    counter.write_text("7")
    fake = FakePsutil()
    recorder = SessionRecorder()
    watch = recorder.noise = MarkedNoiseWatch(HostProbe(fake, clock=lambda: fake.now),
                                              root=str(tmp_path))
    watch(PhaseChanged(0, "measuring"))  # at 100.0; measuring begins 0.2 s later
    fake.advance(0.5, 0.0)
    watch(Progress(0, 0.3, 10))  # read at 100.5: began at 100.2
    # One reading a second from 100.0: others take 1 CPU (of 2) from 101.2 to 103.2, then the
    # CPU throttles between 104.2 and 105.2; the last reading is the window's close, at 105.7.
    for others, throttles in ((0.0, 7), (1.0, 7), (1.0, 7), (0.0, 7), (0.0, 9)):
        fake.advance(0.7 if fake.now == 100.5 else 1.0, others)
        if fake.now > 101.5:
            watch(Progress(0, fake.now - 100.4, 10))  # read later than sent: not the start
        counter.write_text(str(throttles))
        watch(Utilisation(0, ()))
    assert watch.seconds(0) == [1, 2, 4]  # while measuring: the live run's marks
    fake.advance(0.5, 0.0)
    recorder(ConfigFinished(0, result(6)))
    noise = recorder.session.results[-1].details["noise"]
    assert noise["seconds"] == [1, 2, 4] and noise["verdict"] == "noisy"  # keys kept
    assert set(noise) == {"verdict", "reasons", "seconds"}
    assert watch.seconds(0) == [1, 2, 4]  # after it ended, for the run's timeline
    # A host quiet throughout: recorded, and empty.
    watch(PhaseChanged(1, "measuring"))
    fake.advance(1.0, 0.1)
    watch(Utilisation(1, ()))
    recorder(ConfigFinished(1, result(1)))
    assert recorder.session.results[-1].details["noise"]["seconds"] == []


def test_a_busy_reading_marks_the_seconds_that_hold_most_of_it():
    assert busy_seconds([(10.2, 11.2)], 10.0) == [0]  # 0.8 s in second 0, 0.2 s in 1
    assert busy_seconds([(10.5, 11.5)], 10.0) == [0, 1]  # half in each
    assert busy_seconds([(10.1, 10.4), (12.0, 15.0)], 10.0) == [0, 2, 3, 4]
    assert busy_seconds([(9.0, 9.9), (9.5, 10.3)], 10.0) == []  # mostly before measuring
    assert busy_seconds([(12.0, 15.0)], 10.0, limit=4) == [2, 3]
    # Under the sparkline's columns: 6 seconds on 3 columns, 3 seconds on 6.
    assert marked_columns((False, False, True, False, False, False), 3) == [False, True, False]
    assert marked_columns((False, True, False), 6) == [False, False, True, True, False, False]


def marks(app):
    timeline = app.query_one("#timeline")
    widget = app.query_one(BusyMarks)
    return (timeline.has_class("busy"), widget.busy, widget.render().plain,
            str(app.query_one("#busy-value").render()))


async def test_a_saved_session_with_busy_seconds_shows_marks_and_one_without_none(
        make_app, tmp_path):
    quiet = {"verdict": "quiet", "reasons": []}
    noisy = {"verdict": "noisy", "reasons": ["other processes took up to 1.0 CPU of 2"],
             "seconds": [2, 3]}
    marked = save_session(Session(preset={"name": "n"}, model={"source": "builtin:noop"},
                                  results=[result(4, quiet), result(6, noisy)]),
                          tmp_path / "marked.json")
    app = make_app(open_session=str(marked))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        busy, flags, text, value = marks(app)
        assert busy and app.query_one("#busy-row").display
        assert flags == (False,) * 4 + (False, False, True, True, False, False)
        assert "\u2580" in text and value == "2 of 10 s"
        assert app.query_one("#timeline").region.height == 5  # one row more, for the marks
    # Recorded before busy seconds were kept (no "seconds"): drawn as before.
    without = {key: value for key, value in noisy.items() if key != "seconds"}
    plain = save_session(Session(preset={"name": "n"}, model={"source": "builtin:noop"},
                                 results=[result(4, quiet), result(6, without)]),
                         tmp_path / "plain.json")
    app = make_app(open_session=str(plain))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        busy, flags, text, value = marks(app)
        assert not busy and not app.query_one("#busy-row").display
        assert flags == () and text.strip() == "" and value == ""
        assert app.query_one("#timeline").border_subtitle == "10 seconds"
        assert app.query_one("#timeline").region.height == 4  # the stylesheet's, as before


async def test_a_live_run_marks_what_the_recorder_s_watch_found(make_app):
    app = make_app()  # fake-sweep: four configurations of 5 s each, scripted
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await finish_run(pilot)
        # What the watch found (this host's real load is not the test's): the second
        # configuration's first and last seconds.
        app.sessions.recorder.noise.marked = {0: [], 1: [0, 4], 2: [], 3: []}
        app.refresh_panes()
        await pilot.pause()
        busy, flags, _, value = marks(app)
        assert busy and value == "2 of 20 s"
        assert [i for i, flag in enumerate(flags) if flag] == [5, 9]
