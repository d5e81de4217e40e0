"""The Neuron tools' parsers, against real neuron-ls and neuron-monitor output (tests/fixtures/neuron/,
see its README for where each capture comes from), and the variations the Neuron releases show."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from latency_tui.core.neuron.tools import (
    LATENCY_KEYS, NOT_INSTALLED, CoreFigures, MonitorReport, NeuronDevice, NeuronProcess, core_ranges,
    held_cores, holders, merge_percentiles, monitor_config, neuron_ls, parse_core_ranges,
    parse_monitor_line, parse_monitor_report, parse_neuron_ls,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "neuron"
FATA = "FATA[0000] Failed to discover neuron devices"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_report(name: str) -> dict:
    lines = [line for line in fixture_text(name).splitlines() if line.strip()]
    assert len(lines) == 1
    return json.loads(lines[0])


# -- neuron-ls ---------------------------------------------------------------------------------

def test_neuron_ls_trn1_with_no_process():
    devices = parse_neuron_ls(fixture_text("neuron-ls-trn1.2xlarge.json"))
    assert devices == [NeuronDevice(index=0, nc_count=2, memory_bytes=34359738368, core_ids=(0, 1),
                                    processes=())]
    assert held_cores(devices) == {}


def test_neuron_ls_trn2_with_a_process_and_logical_cores():
    devices = parse_neuron_ls(fixture_text("neuron-ls-trn2-device0.json"))
    bench = NeuronProcess(pid=113985, command="neuron-bench exec --run-as-cc-neff --...",
                          runtime_version="2.0.0")
    # logical_neuroncore_config 2: nc_count and the ids are the logical cores (4 of 8 physical).
    assert devices == [NeuronDevice(0, 4, 103079215104, (0, 1, 2, 3), (bench,))]
    assert held_cores(devices) == {0: bench, 1: bench, 2: bench, 3: bench}


def two_devices(first_ids, second_ids, *, reverse=False):
    device = json.loads(fixture_text("neuron-ls-trn1.2xlarge.json"))[0]
    devices = []
    for index, ids in enumerate((first_ids, second_ids)):
        entry = dict(device, neuron_device=index)
        if ids is None:
            del entry["neuroncore_ids"]
        else:
            entry["neuroncore_ids"] = ids
        devices.append(entry)
    return json.dumps(devices[::-1] if reverse else devices)


@pytest.mark.parametrize("text, cores", [
    (two_devices([0, 1], [2, 3]), [(0, 1), (2, 3)]),                   # host-wide, as neuron-ls shows
    (two_devices([0, 1], [0, 1]), [(0, 1), (2, 3)]),                   # local: device d -> d*2 + id
    (two_devices(None, None), [(0, 1), (2, 3)]),                       # no ids: the next nc_count
    (two_devices([0, 1], [2, 3], reverse=True), [(0, 1), (2, 3)]),     # listed out of order
    (two_devices([0, 1], [0, 1], reverse=True), [(0, 1), (2, 3)]),
], ids=["global", "local", "missing", "unordered", "unordered-local"])
def test_cores_are_numbered_across_devices(text, cores):
    devices = parse_neuron_ls(text)
    assert [d.index for d in devices] == [0, 1]
    assert [d.core_ids for d in devices] == cores


def test_held_cores_maps_each_core_of_a_held_device_to_its_first_process():
    first, second = NeuronProcess(10, "a", "2.0"), NeuronProcess(11, "b", "2.0")
    devices = [NeuronDevice(0, 2, None, (0, 1), ()), NeuronDevice(1, 2, None, (2, 3), (first, second))]
    assert held_cores(devices) == {2: first, 3: first}


@pytest.mark.parametrize("cores, text", [
    ([], ""), ([3], "3"), ([0, 1, 2, 5], "0-2, 5"), ([7, 6, 0, 6], "0, 6-7"), (range(4), "0-3"),
])
def test_core_ranges_and_back(cores, text):
    assert core_ranges(cores) == text
    assert parse_core_ranges(text.replace(" ", "")) == set(cores)


def test_parse_core_ranges_leaves_out_what_is_no_core():
    assert parse_core_ranges("0-1, x, 4-, -2, 9") == {0, 1, 9}
    assert parse_core_ranges("") == set()


def test_holders_name_each_process_once():
    a, b = NeuronProcess(10, "python serve.py", "2.0"), NeuronProcess(7, "", "2.0")
    assert holders([a, b, a]) == "? (pid 7), python serve.py (pid 10)"


def test_optional_device_fields_may_be_missing():
    devices = parse_neuron_ls('[{"neuron_device": 0, "nc_count": 2, "neuron_processes": null}]')
    assert devices == [NeuronDevice(0, 2, None, (0, 1), ())]
    assert parse_neuron_ls("[]") == []


@pytest.mark.parametrize("text, reason", [
    ("", "not JSON"),
    ("FATA[0000] Failed to discover neuron devices", "not JSON"),
    ('{"neuron_device": 0}', "expected a JSON array"),
    ("[1]", "not an object"),
    ('[{"nc_count": 2}]', "no neuron_device"),
    ('[{"neuron_device": true, "nc_count": 2}]', "no neuron_device"),
    ('[{"neuron_device": 0}]', "no nc_count"),
    ('[{"neuron_device": 0, "nc_count": "2"}]', "no nc_count"),
    ('[{"neuron_device": 0, "nc_count": 2, "neuroncore_ids": "0-1"}]', "neuroncore_ids"),
    ('[{"neuron_device": 0, "nc_count": 2, "neuroncore_ids": [0, -1]}]', "neuroncore_ids"),
    ('[{"neuron_device": 0, "nc_count": 2, "neuron_processes": [{"command": "x"}]}]', "no pid"),
    ('[{"neuron_device": 0, "nc_count": 2, "neuron_processes": ["x"]}]', "no pid"),
])
def test_neuron_ls_garbage_and_wrong_shapes_raise_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_neuron_ls(text)


def fake_run(*, stdout="", stderr="", returncode=0, raises=None, calls=None):
    def run(argv, **kwargs):
        if calls is not None:
            calls.append((argv, kwargs))
        if raises is not None:
            raise raises
        return SimpleNamespace(returncode=returncode, stdout=stdout, stderr=stderr)
    return run


@pytest.mark.parametrize("run, reason", [
    (fake_run(raises=FileNotFoundError(2, "No such file")), f"neuron-ls not found: {NOT_INSTALLED}"),
    (fake_run(returncode=1, stderr=f"{FATA}\n"), f"no Neuron device (neuron-ls: {FATA})"),
    (fake_run(returncode=1, stderr=f"a warning\n{FATA} error=\"x\"\n\n"),
     f"no Neuron device (neuron-ls: {FATA} error=\"x\")"),
    (fake_run(returncode=2, stderr="flag provided but not defined\n"),
     "neuron-ls failed (exit 2): flag provided but not defined"),
    (fake_run(returncode=139), "neuron-ls failed (exit 139): no message"),
    (fake_run(raises=subprocess.TimeoutExpired(["neuron-ls"], 5.0)), "neuron-ls timed out after 5 s"),
    (fake_run(raises=PermissionError(13, "Permission denied")), "neuron-ls could not run: "),
    (fake_run(stdout="<html>garbage</html>"), "neuron-ls printed something unreadable: not JSON"),
    (fake_run(stdout='{"devices": []}'), "neuron-ls printed something unreadable: expected a JSON array"),
    (fake_run(stdout="[]"), "no Neuron device (neuron-ls listed none)"),
], ids=["not-found", "fata", "fata-among-lines", "other-failure", "no-message", "timeout", "permission",
        "garbage", "wrong-shape", "empty"])
def test_neuron_ls_says_why_there_are_no_devices(run, reason):
    devices, why = neuron_ls(run=run)
    assert devices == []
    assert why is not None and why.startswith(reason)


def test_neuron_ls_runs_the_json_listing_with_a_timeout():
    calls = []
    devices, why = neuron_ls("/opt/aws/neuron/bin/neuron-ls", timeout=2.5,
                             run=fake_run(stdout=fixture_text("neuron-ls-trn2-device0.json"), calls=calls))
    assert why is None and [d.core_ids for d in devices] == [(0, 1, 2, 3)]
    (argv, kwargs), = calls
    assert argv == ["/opt/aws/neuron/bin/neuron-ls", "--json-output"]
    assert kwargs["timeout"] == 2.5 and kwargs["capture_output"] and kwargs["text"]


def put_on_path(tmp_path, monkeypatch, name, body):
    """An executable ``name`` in tmp_path/bin, the only directory on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return script


@pytest.mark.skipif(os.name != "posix", reason="a #! script needs a POSIX host")
def test_neuron_ls_with_real_executables_on_path(tmp_path, monkeypatch):
    listing = FIXTURES / "neuron-ls-trn1.2xlarge.json"
    put_on_path(tmp_path, monkeypatch, "neuron-ls", "import sys\n"
                "assert sys.argv[1:] == ['--json-output'], sys.argv\n"
                f"sys.stdout.write(open({str(listing)!r}).read())\n")
    devices, why = neuron_ls()
    assert why is None and devices == parse_neuron_ls(listing.read_text(encoding="utf-8"))

    put_on_path(tmp_path, monkeypatch, "neuron-ls",
                f"import sys\nsys.stderr.write({FATA!r} + '\\n')\nsys.exit(1)\n")
    assert neuron_ls() == ([], f"no Neuron device (neuron-ls: {FATA})")

    put_on_path(tmp_path, monkeypatch, "neuron-ls", "import time\ntime.sleep(30)\n")
    assert neuron_ls(timeout=0.5) == ([], "neuron-ls timed out after 0.5 s")

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert neuron_ls() == ([], f"neuron-ls not found: {NOT_INSTALLED}")


# -- neuron-monitor ------------------------------------------------------------------------------

INF1_UTILISATION = {0: 2.926414908153532, 1: 3.0803098003189486, 2: 2.517060487060293,
                    3: 2.488352186334406}
INF1_COMPLETED = {20843: 50, 21050: 52, 21411: 43, 21741: 42}
CORE_BYTES = 61766864 + 1295008 + 43216  # constants + model_code + runtime_memory of the core's owner


def test_monitor_inf1_four_processes_aggregates_each_core_over_the_runtimes():
    raw = fixture_report("neuron-monitor-inf1.xlarge-4procs.jsonl")
    report = parse_monitor_report(raw)
    assert report.runtimes == 4
    assert report.cores == {core: CoreFigures(value, CORE_BYTES, None)
                            for core, value in INF1_UTILISATION.items()}
    assert report.host_memory_bytes == 4 * 2605992
    assert (report.completed, report.errors) == (187, 0)
    assert report.error_summary == dict.fromkeys(
        ["generic", "numerical", "transient", "model", "runtime", "hardware"], 0)
    assert report.instance_type == "inf1.xlarge"
    assert report.vcpu_percent == pytest.approx(23.91 + 4.64 + 0.35)
    assert (report.device_count, report.cores_per_device) == (1, 4)
    # Each runtime's own percentiles, in ms.
    assert set(report.latency_ms_by_pid) == set(INF1_COMPLETED)
    assert report.latency_ms_by_pid[20843]["device"]["p50"] == pytest.approx(3.294706344604492)
    assert report.latency_ms_by_pid[21050]["total"]["p99"] == pytest.approx(67.3987865447998)
    # Merged: exact ends, completion-weighted middles.
    total = report.latency_ms["total"]
    assert list(total) == list(LATENCY_KEYS)
    assert total["p0"] == pytest.approx(3.3752918243408203)
    assert total["p100"] == pytest.approx(71.58160209655762)
    own = {pid: sides["total"]["p50"] for pid, sides in report.latency_ms_by_pid.items()}
    assert total["p50"] == pytest.approx(sum(INF1_COMPLETED[p] * own[p] for p in own) / 187)
    assert report.latency_ms["device"]["p100"] == pytest.approx(71.39897346496582)
    hash(report)  # frozen, its dicts left out of the hash


def test_monitor_trn1_idle_has_no_runtime_and_no_cores():
    report = parse_monitor_line(fixture_text("neuron-monitor-trn1.2xlarge-idle.jsonl"))
    assert report == MonitorReport(runtimes=0, instance_type="trn1.2xlarge", device_count=1,
                                   cores_per_device=2)
    assert report.cores == {} and report.vcpu_percent is None and report.host_memory_bytes is None


def runtime(report: dict, pid: int = 1) -> dict:
    return {"pid": pid, "neuron_runtime_tag": str(pid), "error": "", "report": report}


def counters(**cores) -> dict:
    return {"neuroncore_counters": {"neuroncores_in_use": {k[1:]: v for k, v in cores.items()}}}


SUMMARY = {"completed": 10, "completed_with_err": 1, "completed_with_num_err": 2, "timed_out": 3,
           "incorrect_input": 4, "failed_to_queue": 5}
LATENCY = {key: 0.001 * (i + 1) for i, key in enumerate(LATENCY_KEYS)}  # p0 1 ms ... p100 7 ms
LATENCY_MS = {key: pytest.approx(1.0 * (i + 1)) for i, key in enumerate(LATENCY_KEYS)}


@pytest.mark.parametrize("obj, expected", [
    ({}, {"runtimes": 0, "cores": {}, "latency_ms": {}, "completed": 0}),
    ({"neuron_runtime_data": [], "system_data": {"neuron_hw_counters": {"neuron_devices": None}}},
     {"runtimes": 0, "cores": {}}),
    ({"neuron_runtime_data": None, "system_data": None, "instance_info": [], "neuron_hardware_info": 3},
     {"runtimes": 0, "instance_type": None, "device_count": None}),
    ({"neuron_runtime_data": [runtime({"execution_stats": {"execution_summary": SUMMARY}})]},
     {"completed": 10, "errors": 15}),
    ({"neuron_runtime_data": [runtime({"inference_stats": {"inference_summary": SUMMARY,
                                                           "latency_stats": {"total_latency": LATENCY}}})]},
     {"completed": 10, "errors": 15, "latency_ms": {"total": LATENCY_MS}}),
    ({"neuron_runtime_data": [runtime({"execution_stats": {"latency_stats": {
        "total_latency": None, "device_latency": LATENCY}}})]},
     {"latency_ms": {"device": LATENCY_MS}}),
    ({"neuron_runtime_data": [runtime({"execution_stats": {"latency_stats": {
        "total_latency": None, "device_latency": None}}})]},
     {"latency_ms": {}, "latency_ms_by_pid": {}}),
    ({"neuron_runtime_data": [runtime({"execution_stats": {"error_summary": {"generic": 7, "hardware": 1},
                                                           "execution_summary": {"completed": 3}}})]},
     {"errors": 0, "error_summary": {"generic": 7, "hardware": 1}}),
    ({"neuron_runtime_data": [runtime(counters(c0={"neuroncore_utilization": 40.0, "flops": 1e12}))]},
     {"cores": {0: CoreFigures(40.0, None, 1e12)}}),
    ({"neuron_runtime_data": [runtime(counters(c0={"neuroncore_utilization": 40.0,
                                                   "effective_flops": 2e12}))]},
     {"cores": {0: CoreFigures(40.0, None, 2e12)}}),
    ({"neuron_runtime_data": [runtime(counters(c0={"neuroncore_utilization": 60.0}, c1={
        "neuroncore_utilization": 0}), 1), runtime(counters(c0={"neuroncore_utilization": 70.0},
                                                             c1={"neuroncore_utilization": 5.5}), 2)]},
     {"runtimes": 2, "cores": {0: CoreFigures(100.0, None), 1: CoreFigures(5.5, None)}}),
    ({"neuron_runtime_data": [runtime(counters(c0={"neuroncore_utilization": "high"}, cx={
        "neuroncore_utilization": 1.0}, c1=[1], c2={"neuroncore_utilization": True}))]},
     {"cores": {0: CoreFigures(None, None), 2: CoreFigures(None, None)}}),
    ({"neuron_runtime_data": [runtime({"neuroncore_counters": {"neuroncores_in_use": [1, 2]}}), "x", 3]},
     {"runtimes": 1, "cores": {}}),
    ({"neuron_runtime_data": [runtime({"memory_used": {"neuron_runtime_used_bytes": {
        "host": 100, "neuron_device": 300}, "loaded_models": [{"subgraphs": {
            "sg_00": {"memory_used_bytes": {"host": 1, "neuron_device": 250}, "neuroncore_index": 2},
            "sg_01": {"memory_used_bytes": {"host": 1, "neuron_device": 50}, "neuroncore_index": 2}}}]}})]},
     {"host_memory_bytes": 100, "cores": {2: CoreFigures(None, 300)}}),
    ({"neuron_hardware_info": {"neuron_device_count": 16, "neuroncore_per_device_count": 4, "error": ""}},
     {"device_count": 16, "cores_per_device": 4}),
    ({"neuron_hardware_info": {"neuron_device_type": "inferentia", "neuron_device_version": "v2",
                               "neuroncore_version": "v2", "neuron_device_count": 6,
                               "neuron_device_memory_size": 34359738368, "neuroncore_per_device_count": 2,
                               "logical_neuroncore_config": 1, "error": ""}},
     {"device_count": 6, "cores_per_device": 2}),
    ({"instance_data": {"instance_type": "inf1.6xlarge"}}, {"instance_type": "inf1.6xlarge"}),
    ({"instance_info": {"instance_type": "", "error": "no IMDS"}}, {"instance_type": None}),
    ({"system_data": {"vcpu_usage": {"average_usage": {"user": 50.5, "nice": 1, "system": 10,
                                                       "idle": 30, "io_wait": 8.5}}}},
     {"vcpu_percent": pytest.approx(61.5)}),
    ({"system_data": {"vcpu_usage": {"average_usage": None, "error": "x"}}}, {"vcpu_percent": None}),
], ids=["empty", "no-device", "wrong-types", "execution-summary", "inference-stats-pre-2.5",
        "total-latency-null", "both-latencies-null", "error-summary-apart", "flops", "effective-flops",
        "summed-capped", "bad-core-entries", "bad-runtimes", "memory-from-subgraphs", "hardware-older",
        "hardware-newer", "instance-data-v1", "instance-type-empty", "vcpu", "vcpu-missing"])
def test_monitor_report_variations(obj, expected):
    report = parse_monitor_report(copy.deepcopy(obj))
    for name, value in expected.items():
        assert getattr(report, name) == value, name


def test_monitor_report_never_raises_on_a_json_object():
    full = fixture_report("neuron-monitor-inf1.xlarge-4procs.jsonl")
    strange = [None, 1, "x", [], {}, [None], {"0": None}]

    def mutations(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield path + (key,)
                yield from mutations(value, path + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node[:1]):
                yield from mutations(value, path + (i,))

    for count, path in enumerate(mutations(full)):
        obj = copy.deepcopy(full)
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = strange[count % len(strange)]
        assert isinstance(parse_monitor_report(obj), MonitorReport), path


@pytest.mark.parametrize("line", ["", "garbage", "[1, 2]", '"report"', "{\"neuron_runtime_data\": ["])
def test_a_line_that_is_not_a_report_object_is_a_value_error(line):
    with pytest.raises(ValueError):
        parse_monitor_line(line)


@pytest.mark.parametrize("parts, expected", [
    ([(5, {"p0": 1.0, "p50": 2.0})], {"p0": 1.0, "p50": 2.0}),
    ([(1, {"p0": 1.0, "p50": 2.0, "p100": 3.0}), (3, {"p0": 2.0, "p50": 4.0, "p100": 9.0})],
     {"p0": 1.0, "p50": 3.5, "p100": 9.0}),
    ([(0, {"p50": 2.0}), (0, {"p50": 4.0})], {"p50": 3.0}),
    ([(2, {"p50": 2.0}), (2, {"p99": 8.0})], {"p50": 2.0, "p99": 8.0}),
], ids=["one-runtime", "weighted", "no-completions", "disjoint"])
def test_merge_percentiles(parts, expected):
    assert merge_percentiles(parts) == pytest.approx(expected)


def test_monitor_config_matches_the_documented_shape():
    assert monitor_config() == {
        "period": "1s",
        "neuron_runtimes": [{"tag_filter": ".*", "metrics": [
            {"type": "neuroncore_counters"}, {"type": "memory_used"}, {"type": "execution_stats"}]}],
        "system_metrics": [{"type": "vcpu_usage"}, {"type": "memory_info"}],
    }


@pytest.mark.parametrize("period_s, period", [(1, "1s"), (2.0, "2s"), (0.5, "500ms"), (0.0001, "1ms")])
def test_monitor_config_period(period_s, period):
    assert monitor_config(period_s)["period"] == period


@pytest.mark.parametrize("period_s", [0, -1, float("nan"), float("inf"), "1s"])
def test_monitor_config_refuses_a_period_that_is_no_duration(period_s):
    with pytest.raises(ValueError):
        monitor_config(period_s)
