"""The NVML monitor and GPU facts against a scripted pynvml (tests/fake_nvml.py): figures read
right, what NVML will not give left out, honest absence without a driver, a lost GPU among
healthy ones, its own sampling rate, a poll that never waits, and a clean shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_UNKNOWN,
    FakeGpu,
    FakeNvml,
)

from latency_tui.core.monitors import Reading, poll_all, summarise
from latency_tui.core.monitors.nvml import (
    INSTALL_HINT,
    NvmlMonitor,
    NvmlUnavailable,
    gpu_facts,
    load_nvml,
)

UTIL = "nvmlDeviceGetUtilizationRates"
NO_SUCH_PID = 4_194_304 + 7  # above Linux's largest pid_max


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"not within {timeout} s")


def settled(monitor, timeout=2.0):
    """The readings once none says "starting" or "measuring"."""
    def ready():
        readings = monitor.poll()
        return readings if all(r.note not in ("starting", "measuring") for r in readings) else None
    return wait_for(ready, timeout)


@pytest.fixture
def monitor():
    made = []

    def make(*gpus, **kwargs):
        nvml = kwargs.pop("nvml", None) or FakeNvml(gpus)
        made.append(NvmlMonitor(nvml=nvml, **kwargs))
        return made[-1], nvml

    yield make
    for m in made:
        m.close()


def test_a_gpu_reads_its_utilisation_memory_clocks_power_and_temperature(monitor):
    m, _ = monitor(FakeGpu())
    (reading,) = settled(m)
    assert reading.label == "gpu0" and reading.percent == 87.0
    assert reading.note == "12.3/80.0 GB 250/700 W 61°C"
    assert dict(reading.metrics) == {
        "memory_used_gb": 12.3, "memory_total_gb": 80.0, "memory_util": 41.0,
        "sm_clock_mhz": 1980.0, "memory_clock_mhz": 2619.0, "power_w": 250.0,
        "power_limit_w": 700.0, "temperature_c": 61.0, "throttled": 0.0, "other_processes": 0.0,
    }
    summary = summarise([poll_all([m])])["gpu0"]
    assert summary["mean"] == 87.0 and summary["power_w"] == {"mean": 250.0, "max": 250.0}


def test_a_figure_nvml_will_not_give_is_left_out_not_zero(monitor):
    m, _ = monitor(FakeGpu(
        unsupported={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature",
                     "nvmlDeviceGetComputeRunningProcesses",
                     "nvmlDeviceGetComputeRunningProcesses_v2"},
        forbidden={"nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetCurrentClocksThrottleReasons"}))
    (reading,) = settled(m)
    assert reading.percent == 87.0 and reading.note == "12.3/80.0 GB"
    assert set(dict(reading.metrics)) == {"memory_used_gb", "memory_total_gb", "memory_util",
                                          "sm_clock_mhz", "memory_clock_mhz"}
    assert m.throttle_reasons(0) == []


def test_without_a_utilisation_figure_the_reading_is_absent_and_says_why(monitor):
    m, _ = monitor(FakeGpu(unsupported={UTIL}))  # as under MIG
    (reading,) = settled(m)
    assert reading.percent is None
    assert reading.note == "no utilisation figure; 12.3/80.0 GB 250/700 W 61°C"
    assert "memory_util" not in dict(reading.metrics)


@pytest.mark.parametrize("code, reason", [
    (NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA driver"),
    (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver installed)"),
])
def test_without_a_driver_one_absent_reading_says_why_and_nothing_spins(monitor, code, reason):
    m, nvml = monitor(nvml=FakeNvml([FakeGpu()], init_error=code))
    assert settled(m) == [Reading("gpu", None, reason)]
    m._thread.join(1.0)
    assert not m._thread.is_alive() and nvml.count("nvmlInit") == 1
    m.close()
    assert nvml.count("nvmlShutdown") == 0  # nothing was started


def test_without_nvidia_ml_py_the_monitor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` fail
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py is not installed"):
        load_nvml()
    with pytest.raises(NvmlUnavailable):
        gpu_facts()
    m = NvmlMonitor()
    assert m.poll() == [Reading("gpu", None, INSTALL_HINT)] and m._thread is None
    m.close()


def test_a_gpu_lost_mid_run_reads_lost_while_the_others_keep_reporting(monitor):
    lost = FakeGpu(uuid="GPU-1", lost_after=12)  # a sample is 9 calls: lost in the second
    m, nvml = monitor(FakeGpu(uuid="GPU-0"), lost)
    first = wait_for(lambda: [r for r in m.poll() if r.label == "gpu1" and r.percent is None
                              and r.note.startswith("lost")])
    assert first[0].note == "lost: GPU is lost"
    (gpu0,) = [r for r in m.poll() if r.label == "gpu0"]
    assert gpu0.percent == 87.0
    calls, samples = lost.calls, nvml.count(UTIL)
    wait_for(lambda: nvml.count(UTIL) >= samples + 2)
    assert lost.calls == calls  # a lost GPU is not asked again
    assert [r.percent for r in m.poll()] == [87.0, None]


def test_another_nvml_error_reads_lost_for_that_sample_and_it_recovers(monitor):
    gpu = FakeGpu(failing={"nvmlDeviceGetTemperature": NVML_ERROR_UNKNOWN})
    m, _ = monitor(gpu)
    assert settled(m) == [Reading("gpu0", None, "lost: Unknown Error")]
    gpu.failing.clear()
    wait_for(lambda: m.poll()[0].percent == 87.0)


def test_an_old_driver_without_the_versioned_process_call_keeps_every_other_figure(monitor):
    """nvidia-ml-py's unversioned process call raises NVMLLibraryMismatchError, not an
    NVMLError, on drivers before R510: that figure falls back to the _v2 call, and no other
    figure is lost with it."""
    gpu = FakeGpu(pids=[NO_SUCH_PID], mismatched={"nvmlDeviceGetComputeRunningProcesses"})
    m, nvml = monitor(gpu, host_pids=True)
    (reading,) = settled(m)
    assert reading.percent == 87.0 and dict(reading.metrics)["other_processes"] == 1.0
    assert dict(reading.metrics)["temperature_c"] == 61.0
    assert nvml.count("nvmlDeviceGetComputeRunningProcesses_v2") >= 1


def test_a_figure_no_call_of_this_driver_gives_is_absent_and_the_rest_stay(monitor):
    gpu = FakeGpu(mismatched={"nvmlDeviceGetComputeRunningProcesses",
                              "nvmlDeviceGetComputeRunningProcesses_v2"})
    m, _ = monitor(gpu)
    (reading,) = settled(m)
    assert reading.percent == 87.0 and "other_processes" not in dict(reading.metrics)


def test_temperature_reads_through_the_newer_call_and_without_the_deprecated_one(monitor):
    nvml = FakeNvml([FakeGpu()], temperature_v=True, removed={"nvmlDeviceGetTemperature"})
    m, _ = monitor(nvml=nvml)
    (reading,) = settled(m)
    assert dict(reading.metrics)["temperature_c"] == 61.0 and reading.percent == 87.0
    assert nvml.count("nvmlDeviceGetTemperatureV") >= 1


def test_in_a_container_other_processes_are_unknown_not_counted(monitor):
    """Without the host's PID namespace NVML's PIDs are the host's: this run's own would count
    as other processes and mark every configuration noisy."""
    m, _ = monitor(FakeGpu(pids=[NO_SUCH_PID, NO_SUCH_PID + 1]), host_pids=False)
    (reading,) = settled(m)
    assert "other_processes" not in dict(reading.metrics)
    assert "other processes unknown in a container" in reading.note and reading.percent == 87.0


def test_the_run_reads_only_its_own_gpus_labelled_as_cuda_numbers_them(monitor, monkeypatch):
    gpus = [FakeGpu(uuid=f"GPU-{i}aaa", util_gpu=10 * i) for i in range(4)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    m, _ = monitor(*gpus, cuda_indices=[1])  # cuda:1 is NVML's GPU 3
    assert [(r.label, r.percent) for r in settled(m)] == [("gpu1", 30.0)]
    assert all(gpu.calls <= 1 for gpu in gpus[:3])  # its name (are the GPUs alike?), no sample
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1a,GPU-3")  # UUID prefixes, as CUDA takes
    m, _ = monitor(*gpus, cuda_indices=[0, 1])
    assert [(r.label, r.percent) for r in settled(m)] == [("gpu0", 10.0), ("gpu1", 30.0)]


def test_gpus_the_run_cannot_be_matched_to_are_all_read(monitor, monkeypatch):
    """Mixed GPUs and CUDA's fastest-first order: CUDA's numbers need not be NVML's."""
    gpus = [FakeGpu(name="NVIDIA A100"), FakeGpu(name="NVIDIA T4", util_gpu=5)]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    m, _ = monitor(*gpus, cuda_indices=[1])
    assert [r.label for r in settled(m)] == ["gpu0", "gpu1"]
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    m, _ = monitor(*gpus, cuda_indices=[1])
    assert [(r.label, r.percent) for r in settled(m)] == [("gpu1", 5.0)]


def test_a_gpu_this_user_may_not_open_says_so(monitor):
    m, _ = monitor(nvml=FakeNvml([FakeGpu(), FakeGpu()], unopenable={1}))
    assert settled(m)[1] == Reading("gpu1", None, "no permission to read the GPU (NVML)")


def test_a_failed_sample_forgets_the_last_throttle_reasons(monitor):
    gpu = FakeGpu(throttle=0x4)
    m, _ = monitor(gpu)
    wait_for(lambda: m.throttle_reasons(0) == ["sw power cap"])
    gpu.failing["nvmlDeviceGetUtilizationRates"] = NVML_ERROR_UNKNOWN
    wait_for(lambda: m.poll()[0].note == "lost: Unknown Error")
    assert m.throttle_reasons(0) == []


def test_poll_never_raises_even_when_the_binding_does(monitor):
    m, _ = monitor(FakeGpu(broken={"nvmlDeviceGetClockInfo"}))
    (reading,) = settled(m)
    assert reading.percent is None and reading.note.startswith("monitor failed:")
    assert "exploded" in reading.note


def test_it_samples_at_most_four_times_a_second(monitor):
    """Asked for 100 samples a second, it waits a quarter of a second between samples: no
    two begin closer together than that (a loaded host can only space them further)."""
    m, nvml = monitor(FakeGpu(), period_s=0.01)
    assert m.period_s == 0.25
    settled(m)
    wait_for(lambda: len(nvml.started(UTIL)) >= 5, timeout=5.0)
    began = nvml.started(UTIL)
    gaps = [later - earlier for earlier, later in zip(began, began[1:])]
    assert min(gaps) >= 0.24, [round(gap, 3) for gap in gaps]


#: A poll that waited on NVML would take most of a slow call's second; one that does not takes
#: microseconds. The bound sits between, above what a loaded host's scheduling adds.
AT_ONCE_S = 0.25


def test_poll_returns_at_once_while_nvml_is_slow(monitor):
    nvml = FakeNvml([FakeGpu(), FakeGpu()], delays={"nvmlInit": 1.0, UTIL: 1.0})
    m, _ = monitor(nvml=nvml)
    began = time.perf_counter()
    assert m.poll() == [Reading("gpu", None, "starting")]
    assert time.perf_counter() - began < AT_ONCE_S  # NVML takes a second to start
    wait_for(lambda: nvml.count(UTIL) >= 1)  # the sampler is now inside a 1 s call
    slowest, until = 0.0, time.monotonic() + 0.3
    while time.monotonic() < until:
        began = time.perf_counter()
        readings = m.poll()
        slowest = max(slowest, time.perf_counter() - began)
        time.sleep(0.01)
    assert slowest < AT_ONCE_S
    assert readings == [Reading("gpu0", None, "measuring"), Reading("gpu1", None, "measuring")]
    assert [r.percent for r in settled(m, timeout=10.0)] == [87.0, 87.0]


def test_other_processes_are_those_not_given_as_ours(monitor):
    m, _ = monitor(FakeGpu(pids=[100, 200, 300, 101]), own_pids=[100, 101])
    (reading,) = settled(m)
    assert dict(reading.metrics)["other_processes"] == 2.0


def test_by_default_this_process_and_its_children_are_ours(monitor):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10)"])
    try:
        m, _ = monitor(FakeGpu(pids=[os.getpid(), child.pid, NO_SUCH_PID]))
        (reading,) = settled(m)
        assert dict(reading.metrics)["other_processes"] == 1.0
    finally:
        child.kill()
        child.wait(5)


@pytest.mark.parametrize("bits, reasons", [
    (0, []),
    (0x1 | 0x2, []),  # idle, and clocks the user set: not held back from the work
    (0x1 | 0x4, ["sw power cap"]),
    (0x8 | 0x40, ["hw slowdown", "hw thermal"]),
    (0x200 | 0x400, ["board limit", "reliability"]),
    (0x800, ["0x800"]),  # a reason newer than this code still counts
])
def test_throttling_is_flagged_with_its_reasons(monitor, bits, reasons):
    m, _ = monitor(FakeGpu(throttle=bits))
    (reading,) = settled(m)
    assert dict(reading.metrics)["throttled"] == (1.0 if reasons else 0.0)
    assert m.throttle_reasons(0) == reasons
    assert reading.note.endswith("throttled: " + ", ".join(reasons)) == bool(reasons)


def test_the_newer_clocks_event_reasons_call_is_preferred(monitor):
    m, nvml = monitor(nvml=FakeNvml([FakeGpu(throttle=0x4)], event_reasons=True))
    settled(m)
    assert m.throttle_reasons(0) == ["sw power cap"]
    assert nvml.count("nvmlDeviceGetCurrentClocksEventReasons") >= 1
    assert nvml.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 0


def test_a_driver_without_the_newer_call_falls_back_to_throttle_reasons(monitor):
    gpu = FakeGpu(throttle=0x20, failing={
        "nvmlDeviceGetCurrentClocksEventReasons": NVML_ERROR_FUNCTION_NOT_FOUND})
    m, nvml = monitor(nvml=FakeNvml([gpu], event_reasons=True))
    (reading,) = settled(m)
    assert dict(reading.metrics)["throttled"] == 1.0 and m.throttle_reasons(0) == ["sw thermal"]
    assert nvml.count("nvmlDeviceGetCurrentClocksThrottleReasons") >= 1


def test_indices_pick_gpus_and_one_that_is_not_there_says_so(monitor):
    first, second = FakeGpu(), FakeGpu(util_gpu=5)
    m, _ = monitor(first, second, indices=[1, 5])
    picked, missing = settled(m)
    assert (picked.label, picked.percent) == ("gpu1", 5.0)
    assert missing == Reading("gpu5", None, "no such GPU (2 found)")
    assert first.calls == 0


def test_no_gpu_at_all_is_one_absent_reading(monitor):
    m, nvml = monitor()
    assert settled(m) == [Reading("gpu", None, "no NVIDIA GPU found")]
    m._thread.join(1.0)
    assert not m._thread.is_alive() and nvml.count("nvmlShutdown") == 1


def test_close_stops_the_thread_and_shuts_nvml_down_once(monitor):
    m, nvml = monitor(FakeGpu())
    settled(m)
    m.close()
    assert not m._thread.is_alive()
    assert nvml.count("nvmlShutdown") == 1 and nvml.initialised == 0
    samples = nvml.count(UTIL)
    m.close()
    time.sleep(0.3)
    assert nvml.count("nvmlShutdown") == 1 and nvml.count(UTIL) == samples
    assert m.poll() == [Reading("gpu", None, "closed")]


def test_gpu_facts_name_each_gpu_and_the_driver():
    nvml = FakeNvml([
        FakeGpu(name="NVIDIA H100 80GB HBM3", uuid="GPU-aaa"),
        FakeGpu(name="NVIDIA A100-SXM4-40GB", uuid="GPU-bbb", memory_total=40_000_000_000,
                unsupported={"nvmlDeviceGetCudaComputeCapability"}),
    ], driver="550.54.15", cuda=12040, as_bytes=True)
    assert gpu_facts(nvml) == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-aaa", "memory_total_mb": 80000,
         "driver": "550.54.15", "cuda_driver_version": "12.4", "compute_capability": "9.0"},
        {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-bbb", "memory_total_mb": 40000,
         "driver": "550.54.15", "cuda_driver_version": "12.4", "compute_capability": None},
    ]
    assert nvml.count("nvmlShutdown") == 1 and nvml.initialised == 0


def test_gpu_facts_keep_the_others_when_one_gpu_is_lost():
    nvml = FakeNvml([FakeGpu(lost_after=0), FakeGpu()], cuda=11080)
    facts = gpu_facts(nvml)
    assert facts[0] == {"index": 0, "error": "GPU is lost"}
    assert facts[1]["cuda_driver_version"] == "11.8" and facts[1]["name"]


@pytest.mark.parametrize("code, reason", [
    (NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA driver"),
    (NVML_ERROR_NO_PERMISSION, "no permission to read the GPU (NVML)"),
    (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver installed)"),
    (NVML_ERROR_UNKNOWN, "NVML: Unknown Error"),
])
def test_gpu_facts_say_why_nvml_cannot_be_read(code, reason):
    nvml = FakeNvml([FakeGpu()], init_error=code)
    with pytest.raises(NvmlUnavailable) as caught:
        gpu_facts(nvml)
    assert caught.value.reason == str(caught.value) == reason
    assert nvml.count("nvmlShutdown") == 0


def test_a_gpu_fenced_off_by_a_cgroup_is_not_taken_for_the_runs(monitor, monkeypatch):
    """Under a batch scheduler CUDA numbers the job's own GPUs from 0 while NVML lists every GPU
    of the host and may not open the others: cuda:0 is not NVML's 0 there. The run's GPU cannot
    be told, so every GPU that can be opened is read."""
    nvml = FakeNvml([FakeGpu(util_gpu=10), FakeGpu(util_gpu=20), FakeGpu(util_gpu=30)],
                    unopenable={0})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    m, _ = monitor(nvml=nvml, cuda_indices=[0])
    readings = settled(m)
    assert [r.label for r in readings] == ["gpu0", "gpu1", "gpu2"]
    assert readings[0].note == "no permission to read the GPU (NVML)"
    assert [r.percent for r in readings[1:]] == [20.0, 30.0]


def test_any_nvml_error_of_a_newer_call_falls_back_to_the_older_one(monitor):
    """A driver answering nvmlDeviceGetTemperatureV with an argument-version mismatch (25): the
    reading read "lost" at every sample instead of taking the older call's figure."""
    gpu = FakeGpu(failing={"nvmlDeviceGetTemperatureV": 25})
    m, _ = monitor(nvml=FakeNvml([gpu], temperature_v=True))
    (reading,) = settled(m)
    assert reading.percent == 87.0 and dict(reading.metrics)["temperature_c"] == 61.0
