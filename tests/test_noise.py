"""Host noise checks: fake /sys and /proc for the readers, a fake psutil for the arithmetic, and
a real busy loop for the load of other processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import namedtuple
from types import SimpleNamespace

import pytest

from latency_tui.core.events import ConfigFinished, PhaseChanged, Utilisation, WarmupFinished
from latency_tui.core.measurement import ConfigResult, Throughput
from latency_tui.core.noise import (
    HostProbe, NoiseWatch, Snapshot, accelerator_reasons, host_noise_facts, noise_reasons,
    others_between, read_memory_stall_us, read_throttle_count, read_turbo, with_noise,
)
from latency_tui.core.session import Session
from latency_tui.core.specs import RunConfig
from latency_tui.tui.headless import noise_notices

CPU = "sys/devices/system/cpu"


def write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- readers against a fake /sys and /proc --------------------------------------------------------

def test_governor_and_turbo_from_fake_sys_files(tmp_path):
    write(tmp_path, f"{CPU}/cpu0/cpufreq/scaling_governor", "performance\n")
    write(tmp_path, f"{CPU}/cpu1/cpufreq/scaling_governor", "powersave\n")
    write(tmp_path, f"{CPU}/intel_pstate/no_turbo", "0\n")
    facts = host_noise_facts(str(tmp_path), load_average=(0.1, 0.1, 0.1), cpus=2)
    assert facts["governors"] == ["performance", "powersave"] and facts["turbo"] is True
    assert any("powersave on 1 of 2 CPUs" in note for note in facts["notes"])
    assert any("turbo boost on" in note for note in facts["notes"])


def test_a_quiet_host_has_no_notes_and_cpufreq_boost_is_read_without_intel_pstate(tmp_path):
    for cpu in ("cpu0", "cpu1"):
        write(tmp_path, f"{CPU}/{cpu}/cpufreq/scaling_governor", "performance")
    write(tmp_path, f"{CPU}/cpufreq/boost", "0")
    assert read_turbo(str(tmp_path)) is False
    facts = host_noise_facts(str(tmp_path), load_average=(0.2, 0, 0), cpus=2)
    assert facts["notes"] == [] and facts["governors"] == ["performance"]
    # A host that says nothing (a VM without cpufreq): unknown, not a note.
    empty = host_noise_facts(str(tmp_path / "nothing"), load_average=(3.0, 0, 0), cpus=2)
    assert empty["turbo"] is None and empty["governors"] == []
    assert empty["notes"] == ["busy host: load average 3.00 on 2 CPUs before the run"]


class FakePsutil:
    """Counters a test moves by hand: the host's busy CPU seconds, ours, the clock."""

    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal")

    def __init__(self):
        self.busy = self.own = self.steal = 0.0
        self.now = 100.0
        self.available = 50.0

    def cpu_count(self):
        return 2

    def cpu_times(self):
        return self.Times(self.busy, 0, 0, 1000, 0, 0, 0, self.steal)

    def virtual_memory(self):
        return SimpleNamespace(available=self.available, total=100.0)

    def Process(self, pid):  # noqa: N802 - psutil's name
        fake = self

        class Me:
            def __init__(self):
                self.pid = pid

            def children(self, recursive=False):
                return []

            def cpu_times(self):
                return SimpleNamespace(user=fake.own, system=0.0)

        return Me()

    def advance(self, seconds, busy_cpus, own_cpus=0.0):
        self.now += seconds
        self.busy += seconds * busy_cpus
        self.own += seconds * own_cpus


def watch_with(fake, root):
    return NoiseWatch(HostProbe(fake, clock=lambda: fake.now), root=str(root))


def result(device="cpu", threads=1, copies=1, stable=True, warnings=()):
    config = RunConfig(device=device, copies=copies)
    return ConfigResult(config=config, status="finished", samples=100, duration_s=1.0,
                        warmup_stable=stable, throughput=Throughput(100.0, 100.0),
                        details={"threads_per_copy": threads}, warnings=tuple(warnings))


def test_a_throttle_counter_that_rises_while_measuring_makes_the_configuration_noisy(tmp_path):
    counters = [write(tmp_path, f"{CPU}/cpu{i}/thermal_throttle/core_throttle_count", "5")
                for i in range(2)]
    assert read_throttle_count(str(tmp_path)) == 10
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    watch(PhaseChanged(0, "measuring"))
    fake.advance(1.0, busy_cpus=1.0, own_cpus=1.0)  # our own work: not noise
    counters[1].write_text("8")
    watch(ConfigFinished(0, result()))
    load = watch.load(0)
    assert load["throttle_events"] == 3 and load["others_cpus"] == 0.0
    noisy = with_noise(result(), load)
    assert noisy.details["noise"]["verdict"] == "noisy"
    (reason,) = noisy.details["noise"]["reasons"]
    assert "throttled its clocks (thermal) 3 time(s)" in reason and reason in noisy.warnings


def test_memory_pressure_from_a_fake_proc(tmp_path):
    psi = write(tmp_path, "proc/pressure/memory",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=500\n")
    assert read_memory_stall_us(str(tmp_path)) == 1000
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    watch(PhaseChanged(0, "measuring"))
    fake.advance(2.0, busy_cpus=0.0)
    fake.available = 3.0
    psi.write_text("some avg10=40.00 avg60=0.00 avg300=0.00 total=501000\n")
    watch(ConfigFinished(0, result()))
    load = watch.load(0)
    assert load["memory_stall_pct"] == 25.0 and load["available_memory_pct"] == 3.0
    reasons = noise_reasons(load, cpus=2, usable=2)
    assert any("stalled on memory 25 %" in r for r in reasons)
    assert any("available memory fell to 3.0 %" in r for r in reasons)


def test_the_load_of_other_processes_is_the_host_s_less_ours_sampled_each_second(tmp_path):
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    watch(PhaseChanged(0, "warmup"))
    fake.advance(1.0, busy_cpus=2.0, own_cpus=0.2)  # saturated by others during warm-up
    watch(WarmupFinished(0, 1.0, 10, True, 1.0))
    watch(PhaseChanged(0, "measuring"))
    for own in (1.0, 1.0, 0.0, 1.0, 1.0):  # our copy keeps one CPU busy; others take both in
        fake.advance(1.0, busy_cpus=1.0 if own else 2.0, own_cpus=own)  # the third second
        watch(Utilisation(0, ()))
    watch(ConfigFinished(0, result()))
    load = watch.load(0)
    assert load["samples"] == 5 and load["cpus"] == 2
    assert load["others_cpus"] == pytest.approx(0.4, abs=0.01)  # less the counters' resolution
    assert load["others_cpus_peak"] == pytest.approx(2.0, abs=0.04)
    assert load["warmup_others_cpus"] == pytest.approx(1.8, abs=0.05)
    reasons = noise_reasons(load, threads=1, warmup_stable=True, cpus=2, usable=2)
    assert any("warm-up was called stable while the host was saturated" in r for r in reasons)
    assert any("in bursts" in r for r in reasons)
    assert watch.load(0) == {}  # handed back once


def test_an_interval_too_short_to_tell_has_no_figure():
    a = Snapshot(0.0, 0.0, 0.0, 0.0)
    assert others_between(a, Snapshot(0.05, 0.02, 0.0, 0.0), cpus=2) is None
    quiet = others_between(a, Snapshot(0.5, 0.02, 0.0, 0.0), cpus=2)  # two ticks: resolution
    assert quiet == {"others": 0.0, "steal": 0.0}


@pytest.mark.parametrize("load, threads, copies, usable, device, words", [
    ({"others_cpus": 1.0}, 2, 1, 2, "cpu", "2 intra-op threads (2 per copy x 1) but only 1.0 CPU free"),
    ({"others_cpus": 0.0}, 2, 2, 2, "cpu", "4 intra-op threads (2 per copy x 2) on 2 usable CPUs"),
    ({"others_cpus": 0.1}, 2, 1, 2, "cpu", None),  # counter noise, not load
    ({"others_cpus": 0.3}, 1, 1, 4, "cpu", None),  # one thread, three free CPUs
    ({"others_cpus": 0.3}, 4, 1, 4, "cuda:0", None),  # threads matter on the CPU device only
])
def test_intra_op_threads_against_the_free_cores(load, threads, copies, usable, device, words):
    reasons = noise_reasons({**load, "cpus": 4 if usable == 4 else 2}, device=device,
                            threads=threads, copies=copies, usable=usable)
    found = [r for r in reasons if "intra-op threads" in r]
    assert (words is None and not found) or (found and words in found[0]), reasons


def test_a_warm_up_on_a_saturated_host_is_noisy_only_when_called_stable():
    load = {"others_cpus": 0.2, "warmup_others_cpus": 1.8, "cpus": 2}
    assert any("warm-up" in r for r in noise_reasons(load, warmup_stable=True, usable=2))
    assert not any("warm-up" in r for r in noise_reasons(load, warmup_stable=False, usable=2))


def test_gpu_throttling_and_sharing_are_reasons_but_neuron_failures_are_not():
    utilisation = {"gpu0": {"mean": 90, "throttled": {"max": 1.0}, "other_processes": {"max": 2}},
                   "nc": {"mean": 50, "execution_errors": {"max": 3}}}
    reasons = accelerator_reasons(utilisation)
    assert len(reasons) == 2 and "throttled" in reasons[0] and "2 other processes" in reasons[1]
    steady = {"gpu0": {"sm_clock_mhz": {"mean": 1980, "max": 1980},
                       "power_w": {"mean": 300, "max": 320}, "power_limit_w": {"mean": 700, "max": 700}}}
    assert accelerator_reasons(steady) == []
    capped = {"gpu0": {"sm_clock_mhz": {"mean": 1500, "max": 1980},
                       "power_w": {"mean": 690, "max": 699}, "power_limit_w": {"mean": 700, "max": 700}}}
    clocks, power = accelerator_reasons(capped)
    assert "SM clocks varied" in clocks and "power cap (699 of 700 W)" in power


def test_the_verdict_keeps_its_shape_and_warnings_are_not_repeated():
    quiet = with_noise(result(warnings=("p99 rests on 2 samples",)), {"others_cpus": 0.0, "cpus": 2})
    assert quiet.details["noise"] == {"verdict": "quiet", "reasons": []}
    assert quiet.warnings == ("p99 rests on 2 samples",)
    load = {"others_cpus": 1.5, "others_cpus_peak": 2.0, "cpus": 2}
    once = with_noise(result(), load)
    twice = with_noise(once, load)
    assert set(once.details["noise"]) == {"verdict", "reasons"}
    assert twice.warnings == once.warnings and once.details["host_load"]["others_cpus"] == 1.5


def test_the_watch_never_raises():
    class Broken:
        def refresh(self):
            raise RuntimeError("no /proc")

    watch = NoiseWatch(Broken())
    watch(PhaseChanged(0, "measuring"))
    watch(ConfigFinished(0, result()))
    assert watch.load(0) == {}


# -- a real busy loop -----------------------------------------------------------------------------

SPIN = "import time\nend = time.time() + 3\nwhile time.time() < end:\n    pass\n"


def test_a_real_busy_loop_of_another_process_makes_the_load_reading_noisy():
    watch = NoiseWatch()
    watch(PhaseChanged(0, "measuring"))  # our process tree is taken now: the spinners are not ours
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
    try:
        for _ in range(4):
            time.sleep(0.3)
            watch(Utilisation(0, ()))
    finally:
        for each in spinners:
            each.kill()
            each.wait()
    watch(ConfigFinished(0, result(threads=1)))
    load = watch.load(0)
    assert load["others_cpus"] >= 0.9 and load["others_cpus_peak"] >= 0.9, load
    noisy = with_noise(result(threads=1), load)
    assert noisy.details["noise"]["verdict"] == "noisy"
    assert any("other processes" in r for r in noisy.details["noise"]["reasons"])


def test_our_own_busy_threads_are_not_counted_as_others():
    probe = HostProbe()
    stop = threading.Event()

    def spin():  # 0.4 s of CPU however long a loaded host takes to give it
        while time.thread_time() < 0.4 and not stop.is_set():
            pass

    before = probe.snapshot()
    spinner = threading.Thread(target=spin)
    spinner.start()
    spinner.join(60)
    stop.set()
    spinner.join()
    after = probe.snapshot()
    assert after.own_s - before.own_s >= 0.3  # the spin is ours: subtracted from the host's


# -- what `run` prints ----------------------------------------------------------------------------

def test_run_prints_a_line_per_noisy_configuration_and_the_host_notes():
    noisy = with_noise(result(), {"others_cpus": 1.5, "others_cpus_peak": 2.0, "cpus": 2})
    quiet = with_noise(result(), {"others_cpus": 0.0, "cpus": 2})
    session = Session(host={"noise": {"notes": ["turbo boost on: clocks vary"]}},
                      results=[noisy, quiet])
    lines = noise_notices(session)
    assert lines[0] == "host: turbo boost on: clocks vary"
    # others' load, one thread without a free CPU, a warm-up called stable on a busy host
    assert lines[1].startswith("noise: batch 1, 1 x 1: NOISY, 3 reasons (the ! lines above)")
    assert len(lines) == 2
    assert noise_notices(Session(results=[quiet])) == [
        "noise: quiet (other processes, intra-op threads, memory and throttling checked)"]


# -- Neuron: NeuronCores held by other processes (neuron-ls, real captures) ----------------------

import json  # noqa: E402 - this section's own imports
import os  # noqa: E402
from pathlib import Path  # noqa: E402

from latency_tui.core.events import ConfigStarted  # noqa: E402
from latency_tui.core.neuron.tools import neuron_ls  # noqa: E402
from latency_tui.core.noiseneuron import (  # noqa: E402
    HeldCoresNoted, NeuronHolders, held_cores_noted, neuron_reasons, own_pids,
)

NEURON_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "neuron"
TRN2 = (NEURON_FIXTURES / "neuron-ls-trn2-device0.json").read_text(encoding="utf-8")  # pid 113985
TRN1_IDLE = (NEURON_FIXTURES / "neuron-ls-trn1.2xlarge.json").read_text(encoding="utf-8")
BENCH = "neuron-bench exec --run-as-cc-neff --..."


def listing(*outputs, reads=None):
    """A neuron-ls reader: the real ``neuron_ls`` over a fake runner that prints each of
    ``outputs`` in turn (the last one again after); an exception in them is raised by the run."""
    queue = list(outputs)

    def run(argv, **kwargs):
        out = queue.pop(0) if len(queue) > 1 else queue[0]
        if reads is not None:
            reads.append(argv)
        if isinstance(out, BaseException):
            raise out
        return SimpleNamespace(returncode=0, stdout=out, stderr="")
    return lambda: neuron_ls(run=run)


def with_process(text, *processes):
    """The trn2 capture with its device's process list replaced by ``(pid, command)`` pairs."""
    devices = json.loads(text)
    devices[0]["neuron_processes"] = [{"pid": pid, "command": command,
                                       "neuron_runtime_version": "2.0.0"}
                                      for pid, command in processes]
    return json.dumps(devices)


def neuron_run(watch, copies=2, device="neuron", samples=3, options=None):
    """A configuration's events as the engine sends them, a few seconds of measuring."""
    config = RunConfig(device=device, copies=copies, copy_mode="process",
                       device_options=options or {})
    watch(ConfigStarted(0, 1, config))
    watch(PhaseChanged(0, "loading"))
    watch(PhaseChanged(0, "warmup"))
    watch(WarmupFinished(0, 5.0, 10, True, 0.5))
    watch(PhaseChanged(0, "measuring"))
    for _ in range(samples):
        watch(Utilisation(0, ()))
    watch(ConfigFinished(0, result(device=device, copies=copies)))


def test_the_cores_another_process_holds_are_counted_from_the_runs_first_core():
    """With first_core = 2 this run's copies have cores 2-3: the other process on the device
    holds 0-1, not the copies' cores."""
    one_device = json.dumps([{"neuron_device": 0, "nc_count": 4, "memory_size": 2**33,
                              "neuroncore_ids": [0, 1, 2, 3], "neuron_processes": [
                                  {"pid": 999, "command": "python serve.py"},
                                  {"pid": 100, "command": "python copy 0"}]}])
    holders = NeuronHolders(read=listing(one_device), own=lambda: {100})
    done = noted_run(holders, copies=2, options={"first_core": 2})
    assert [(h["pid"], h["cores"]) for h in done.details["neuron_holders"]] == [(999, [0, 1])]


def noted_run(holders, watch=None, **kwargs):
    """``neuron_run`` through the engine's ``HeldCoresNoted`` (and on to ``watch``, as the
    recorder gets them); the finished result as the recorder receives it."""
    finished = []

    def sink(event):
        if watch is not None:
            watch(event)
        if isinstance(event, ConfigFinished):
            finished.append(event.result)

    neuron_run(HeldCoresNoted(sink, holders), **kwargs)
    (done,) = finished
    return done


def test_neuron_cores_held_by_another_process_make_the_configuration_noisy(tmp_path):
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    reads = []
    holders = NeuronHolders(read=listing(TRN2, reads=reads), own=lambda: {100, 101, 102})
    done = noted_run(holders, watch, copies=2)
    assert len(reads) == 2  # at warm-up and at the end: never per sample
    assert done.details["neuron_holders"] == [{"pid": 113985, "command": BENCH, "cores": [2, 3],
                                               "seen": ["start", "end"]}]
    noisy = with_noise(done, watch.load(0))
    assert noisy.details["noise"]["verdict"] == "noisy"
    reason = f"NeuronCores nc2, nc3 held by another process (pid 113985, {BENCH}) during the run"
    assert noisy.details["noise"]["reasons"] == [reason] and reason in noisy.warnings
    json.dumps(noisy.details)  # goes into the session file as it is


def test_a_process_gone_before_the_end_counts_and_one_copy_of_ours_does_not():
    # At warm-up: our copy (pid 101) and a stranger (pid 4242) on the device; at the end, the
    # stranger has gone and our copy, already ended, is still listed (it is no longer a child).
    start = with_process(TRN2, (101, "python -m latency_tui copy"), (4242, "python serve.py"))
    end = with_process(TRN2, (101, "python -m latency_tui copy"))
    alive = [{100, 101}, {100}]
    holders = NeuronHolders(read=listing(start, end), own=lambda: alive.pop(0))
    neuron_run(holders, copies=1)
    load = holders.load(0)
    assert load["neuron_holders"] == [{"pid": 4242, "command": "python serve.py",
                                       "cores": [1, 2, 3], "seen": ["start"]}]
    assert neuron_reasons(load) == [
        "NeuronCores nc1-nc3 held by another process (pid 4242, python serve.py) during the run"]
    assert holders.load(0) == {}  # handed back once


@pytest.mark.parametrize("text", [
    with_process(TRN2, (100, "latency-tui run"), (101, "python copy 0"), (102, "python copy 1")),
    TRN1_IDLE,
], ids=["own-copies", "idle-trn1"])
def test_neuron_cores_held_only_by_our_own_processes_are_not_noise(tmp_path, text):
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    holders = NeuronHolders(read=listing(text), own=lambda: {100, 101, 102})
    done = noted_run(holders, watch, copies=2)
    assert done.details["neuron_holders"] == []  # read, and nobody else was there
    quiet = with_noise(done, watch.load(0))
    assert quiet.details["noise"] == {"verdict": "quiet", "reasons": []}


@pytest.mark.parametrize("failure", [
    FileNotFoundError(2, "No such file or directory: 'neuron-ls'"),
    subprocess.TimeoutExpired(["neuron-ls"], 5.0),
    "<html>garbage</html>",
    '{"devices": []}',
    '[{"neuron_device": 0, "nc_count": 2, "neuron_processes": [{"command": "no pid"}]}]',
    "[]",
], ids=["missing", "timeout", "garbage", "wrong-shape", "no-pid", "no-device"])
def test_no_neuron_ls_or_an_unreadable_listing_gives_no_reason(tmp_path, failure):
    fake = FakePsutil()
    watch = watch_with(fake, tmp_path)
    done = noted_run(NeuronHolders(read=listing(failure), own=lambda: {100}), watch)
    assert "neuron_holders" not in done.details
    assert with_noise(done, watch.load(0)).details["noise"]["verdict"] == "quiet"


def test_neuron_ls_is_not_run_for_other_devices_and_a_broken_reader_breaks_nothing(tmp_path):
    reads = []
    holders = NeuronHolders(read=listing(TRN2, reads=reads), own=lambda: {100})
    neuron_run(holders, device="cpu")
    assert reads == [] and holders.load(0) == {}

    def broken():
        raise RuntimeError("boom")
    holders = NeuronHolders(read=broken, own=lambda: {100})
    neuron_run(holders)
    assert holders.load(0) == {}
    assert neuron_reasons({"neuron_holders": "garbage"}) == neuron_reasons({}) == []
    assert neuron_reasons({"neuron_holders": [{"pid": 7, "command": "x", "cores": [0]}, 3]}) == [
        "NeuronCore nc0 held by another process (pid 7, x) during the run"]


def test_neuron_ls_runs_on_the_engines_thread_never_in_the_recorder(tmp_path, monkeypatch):
    """The TUI feeds its recorder on the UI thread: a listing there (up to 5 s) froze the
    screen at each Neuron configuration's warm-up and end. The engine notes the holders on its
    own thread (``held_cores_noted``, on the neuron device only); the recorder runs nothing."""
    from latency_tui.core.recorder import SessionRecorder

    started = []

    def no_process(*args, **kwargs):  # recorded: the recorder swallows what a check raises
        started.append(args)
        raise OSError("no process here")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(NeuronHolders, "_look", lambda self, when: started.append(when))
    recorder = SessionRecorder()
    neuron_run(recorder, copies=2)
    assert started == [] and "neuron_holders" not in recorder.session.results[0].details
    sink = [].append
    assert held_cores_noted(sink, "cpu") is sink and held_cores_noted(sink, "cuda:0") is sink
    assert isinstance(held_cores_noted(sink, "neuron:1"), HeldCoresNoted)


def test_own_pids_are_this_process_and_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert {os.getpid(), child.pid} <= own_pids()
    finally:
        child.kill()
        child.wait()
