"""The app and this host's devices: a run on a device the host lacks is refused with the
reason (one notice, no run), the edit form offers the devices the host has, and the
utilisation pane shows the GPU and NeuronCore rows the engine streams."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Select

from latency_tui.core import api
from latency_tui.core.api import Reading, StaticMonitor, UserError
from latency_tui.tui.screens import EditScreen

from .conftest import SIZE, finish_run, wait_for
from .test_app import header, notices

CUDA_PRESET = """
    name = "on-cuda"
    [model]
    source = "builtin:noop"
    [run]
    device = "cuda"
    batch_sizes = [1, 8]
    duration_s = 1
"""

GPU_HOST = [
    {"kind": "cpu", "available": True, "devices": [{"name": "Fake CPU"}]},
    {"kind": "cuda", "available": True, "devices": [
        {"index": 0, "cuda_index": 0, "name": "NVIDIA H100"},
        {"index": 1, "cuda_index": 1, "name": "NVIDIA H100"}]},
    {"kind": "neuron", "available": True, "devices": [{"index": 0, "cores": 2}]},
]


async def settle(pilot, predicate, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        await pilot.pause()
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting on the app")


@pytest.fixture
def refused(monkeypatch):
    """``api.check_available`` refusing every device, counting its calls."""
    calls = []

    def check(plan):
        calls.append(plan.configs[0].device)
        raise UserError(f"device {plan.configs[0].device!r}: this torch (2.0.0+cpu) is a "
                        "CPU-only build; install a CUDA build from pytorch.org")

    monkeypatch.setattr(api, "check_available", check)
    return calls


async def test_r_on_a_device_this_host_lacks_is_one_notice_and_no_run(make_app, write_preset,
                                                                      refused):
    app = make_app(str(write_preset(CUDA_PRESET)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot, lambda: notices(app, "error"))
        await pilot.pause()
        assert notices(app, "error") == ["device 'cuda': this torch (2.0.0+cpu) is a CPU-only "
                                         "build; install a CUDA build from pytorch.org"]
        assert app.starter.handles == [] and not app.run_active
        assert "RUNNING" not in header(app) and "FAILED" not in header(app)
        await pilot.press("r")  # again: the answer is known, said at once, checked once
        await pilot.pause()
        assert len(notices(app, "error")) == 2 and refused == ["cuda"]
        assert app.starter.handles == []


async def test_a_sweep_on_a_device_this_host_lacks_is_refused_too(make_app, write_preset,
                                                                 refused):
    app = make_app(str(write_preset(CUDA_PRESET)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b", "ctrl+u", "1", ",", "2", "enter")
        await settle(pilot, lambda: notices(app, "error"))
        assert "CPU-only build" in notices(app, "error")[0]
        assert app.starter.handles == []


async def test_the_real_check_on_this_cpu_only_torch(make_app, write_preset):
    torch = pytest.importorskip("torch")
    if getattr(torch.version, "cuda", None) is not None:
        pytest.skip("this torch is a CUDA build")
    app = make_app(str(write_preset(CUDA_PRESET)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await settle(pilot, lambda: notices(app, "error"), timeout=60)
        (error,) = notices(app, "error")
        assert error.startswith("device 'cuda': ") and "CPU-only build" in error
        assert app.starter.handles == []


async def test_cpu_and_fake_runs_start_at_once_without_a_check(make_app, refused):
    app = make_app()  # fake-sweep
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        await pilot.pause()
        assert len(app.starter.handles) == 1 and refused == []
        await finish_run(pilot)


def device_values(app):
    assert isinstance(app.screen, EditScreen)
    return [value for _, value in app.screen.devices]


async def test_the_edit_form_offers_only_the_devices_this_host_has(make_app, monkeypatch):
    described = []
    monkeypatch.setattr(api, "describe_devices",
                        lambda: described.append(1) or [dict(e) for e in GPU_HOST])
    app = make_app("cpu-mlp")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await settle(pilot, lambda: "cuda:1" in device_values(app))
        assert device_values(app) == ["cpu", "fake", "cuda", "cuda:0", "cuda:1", "cuda:all",
                                      "neuron"]
        field = app.screen.query_one("#field-device", Select)
        assert field.value == "cpu"
        field.value = "cuda:1"
        await pilot.press("ctrl+s")
        assert not isinstance(app.screen, EditScreen)
        assert app.overrides == {"device": "cuda:1"}
        await pilot.press("e")  # the host is described once per app
        await pilot.pause()
        assert app.screen.query_one("#field-device", Select).value == "cuda:1"
        assert described == [1]


async def test_on_a_cpu_only_host_the_form_offers_cpu_and_fake_and_keeps_the_plans_device(
        make_app, write_preset):
    app = make_app(str(write_preset(CUDA_PRESET)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await settle(pilot, lambda: app.plans.described is not None)
        await pilot.pause()
        assert device_values(app) == ["cuda", "cpu", "fake"]
        label = app.screen.devices[0][0]
        assert "not on this host" in label and "CPU-only build" in label
        assert app.screen.query_one("#field-device", Select).value == "cuda"
        await pilot.press("ctrl+s")  # unchanged: no override
        assert not isinstance(app.screen, EditScreen) and app.overrides == {}


ACCELERATORS = (
    StaticMonitor("cpu", [Reading("cpu0", 40.0), Reading("cpu1", 35.0)]),
    StaticMonitor("gpu", [Reading("gpu0", 87.0, "30.1/80.0 GB"),
                          Reading("gpu1", None, "not supported")]),
    StaticMonitor("neuron", [Reading("nc0", 55.0), Reading("nc1", 12.0)]),
)


async def test_the_utilisation_pane_shows_gpu_and_neuroncore_rows_from_the_engine(make_app):
    app = make_app("slow", real=True, engine={"monitors": ACCELERATORS})
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#utilisation")
        assert "N/A (no NVIDIA" in str(pane.render())  # the app's own monitors, idle
        await pilot.press("r")
        await wait_for(pilot, lambda: "nc0" in str(pane.render()))
        lines = str(pane.render()).splitlines()
        row = {line.split()[0]: line for line in lines if line.strip()}
        assert "87%" in row["gpu0"] and "N/A (not supported)" in row["gpu1"]
        assert "55%" in row["nc0"] and "12%" in row["nc1"]
        assert "40%" in row["cpu0"]
        assert "no NVIDIA" not in str(pane.render())
        await pilot.press("r")
        await finish_run(pilot)


def test_the_edit_form_numbers_gpus_as_this_process_sees_them():
    """With CUDA_VISIBLE_DEVICES=5,2 on an 8-GPU host the form offered cuda:0 ... cuda:7 (NVML's
    numbers), most of which the run then refused; it offers cuda:0 (NVML's 5) and cuda:1."""
    from latency_tui.tui.planstate import PlanState

    host = [{"kind": "cuda", "available": True, "devices": [
        {"index": i, "name": f"GPU {i}", "cuda_index": {5: 0, 2: 1}.get(i)} for i in range(8)]}]
    state = PlanState.__new__(PlanState)
    state.described = host
    assert state.device_choices("cpu")[2:] == [
        ("cuda", "cuda"), ("cuda:0  GPU 5", "cuda:0"), ("cuda:1  GPU 2", "cuda:1"),
        ("cuda:all  (copy i on GPU i mod 2)", "cuda:all")]
