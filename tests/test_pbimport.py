"""pytest-benchmark's JSON as the baseline of ``latency-tui compare``: recognised by its keys (a
session never is one), its raw ``data`` tested as a session's samples, its summary shown
untested without them, benchmarks paired with configurations by the documented rules, and one
line with exit status 2 when nothing pairs."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from latency_tui.core import samplestore
from latency_tui.core.compare import NO_SAMPLES, SAME, SLOWER
from latency_tui.core.measurement import ConfigResult
from latency_tui.core.errors import UserError
from latency_tui.core.fields import Fields
from latency_tui.core.pbimport import (
    BenchmarkFile, compare_baseline, is_pytest_benchmark, load_any, parse_benchmark, parse_pairs,
)
from latency_tui.core.session import Session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.core.stats import summarize, throughput
from latency_tui.tui.cli import main

MEDIAN_S = 0.004  # a 4 ms inference


def seconds(seed, n, scale=1.0):
    """Round times (s) as pytest-benchmark records them: a lognormal around 4 ms."""
    rng = np.random.default_rng(seed)
    return MEDIAN_S * scale * np.exp(rng.normal(0.0, 0.2, n))


def entry(name, values, *, params=None, data=True, iterations=1, warmup=False,
          timer="perf_counter"):
    """One ``benchmarks`` entry with every key pytest-benchmark 4 writes."""
    s = sorted(float(v) for v in values)
    n = len(s)
    q1, q3 = float(np.quantile(s, 0.25)), float(np.quantile(s, 0.75))
    stats = {"min": s[0], "max": s[-1], "mean": statistics.fmean(s),
             "stddev": statistics.stdev(s), "rounds": n, "median": statistics.median(s),
             "iqr": q3 - q1, "q1": q1, "q3": q3, "iqr_outliers": 0, "stddev_outliers": 0,
             "outliers": "0;0", "ld15iqr": s[0], "hd15iqr": s[-1],
             "ops": n / sum(s), "total": sum(s), "iterations": iterations}
    if data:
        stats["data"] = [float(v) for v in values]
    param = None if params is None else "-".join(str(v) for v in params.values())
    return {"group": None, "name": name, "fullname": f"tests/test_m.py::{name}",
            "params": params, "param": param, "extra_info": {},
            "options": {"disable_gc": False, "timer": timer, "min_rounds": 5,
                        "max_time": 1.0, "min_time": 5e-06, "warmup": warmup},
            "stats": stats}


def document(*entries):
    return {
        "machine_info": {"node": "ci-runner", "processor": "x86_64", "machine": "x86_64",
                         "python_compiler": "GCC 11.4.0", "python_implementation": "CPython",
                         "python_implementation_version": "3.11.4", "python_version": "3.11.4",
                         "python_build": ["main", "Jun  7 2023 05:45:37"],
                         "release": "6.5.0-1018-aws", "system": "Linux",
                         "cpu": {"arch": "X86_64", "bits": 64, "count": 2,
                                 "brand_raw": "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"}},
        "commit_info": {"id": "5b1e0c4d2f3a", "time": "2024-05-01T10:00:00+00:00",
                        "author_time": "2024-05-01T10:00:00+00:00", "dirty": False,
                        "project": "mymodel", "branch": "main"},
        "benchmarks": list(entries),
        "datetime": "2024-05-01T10:05:12.345678",
        "version": "4.0.0",
    }


def session_result(config, values_s):
    """A finished latency-tui result of ``config`` with ``values_s`` as its stored samples."""
    ns = np.sort(np.rint(np.asarray(values_s) * 1e9).astype(np.int64))
    return ConfigResult(config, "finished", samples=ns.size, duration_s=float(ns.sum()) / 1e9,
                        latency=summarize(ns, presorted=True),
                        throughput=throughput(ns.size, float(ns.sum()) / 1e9,
                                              config.batch_size, None),
                        latency_samples=samplestore.store_sorted(ns))


@pytest.fixture
def files(tmp_path):
    def write_benchmarks(name, *entries):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document(*entries), indent=4))
        return str(path)

    def write_session(name, *results):
        path = tmp_path / f"{name}.json"
        save_session(Session(results=list(results)), path)
        return str(path)
    return write_benchmarks, write_session


def run(capsys, *args):
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def cfg(batch, copies=1, workers=1):
    return RunConfig("cpu", batch_size=batch, copies=copies, workers_per_copy=workers)


# -- format detection --------------------------------------------------------------------------

def test_the_format_is_told_by_its_keys_and_a_session_is_never_taken_for_it(files, tmp_path):
    write_benchmarks, _ = files
    doc = document(entry("test_x", seconds(0, 50)))
    assert is_pytest_benchmark(doc)
    assert not is_pytest_benchmark({"benchmarks": []})  # no other key of the format
    session = Session(results=[session_result(cfg(1), seconds(1, 50))])
    assert not is_pytest_benchmark(session.to_dict())
    # a session holding the same words (here at the top level) is still a session
    data = {**session.to_dict(), "benchmarks": [], "machine_info": {}, "version": "4.0.0"}
    assert not is_pytest_benchmark(data)
    (tmp_path / "s.json").write_text(json.dumps(data))
    loaded = load_any(tmp_path / "s.json")
    assert isinstance(loaded, Session) and len(loaded.results) == 1
    loaded = load_any(write_benchmarks("b", entry("test_x", seconds(0, 50))))
    assert isinstance(loaded, BenchmarkFile) and loaded.version == "4.0.0"
    bench = loaded.benchmarks[0]
    assert bench.fullname == "tests/test_m.py::test_x" and bench.data_s.size == 50


def test_a_damaged_file_is_refused_naming_the_field(files, capsys):
    write_benchmarks, write_session = files
    broken = entry("test_x", seconds(0, 50))
    del broken["stats"]["median"]
    base = write_benchmarks("b", broken)
    code, out, err = run(capsys, base, write_session("s", session_result(cfg(1), seconds(1, 50))))
    assert code == 2 and "benchmarks[0].stats.median: is missing" in err
    assert err.count("\n") == 1 and not out
    good = write_benchmarks("good", entry("test_x", seconds(0, 50)))
    code, _, err = run(capsys, write_session("s2", session_result(cfg(1), seconds(1, 50))), good)
    assert code == 2 and "may only be the baseline" in err


# -- verdicts ------------------------------------------------------------------------------------

def test_with_data_a_10_percent_slower_session_is_flagged_and_an_identical_one_is_not(
        files, capsys):
    write_benchmarks, write_session = files
    base = write_benchmarks("base", entry("test_infer[1]", seconds(0, 200), params={"batch_size": 1}),
                            entry("test_infer[8]", seconds(1, 200), params={"batch_size": 8}))
    same = write_session("same", session_result(cfg(1), seconds(2, 5000)),
                         session_result(cfg(8), seconds(3, 5000)))
    slow = write_session("slow", session_result(cfg(1), seconds(4, 5000)),
                         session_result(cfg(8), seconds(5, 5000, scale=1.1)))
    code, out, _ = run(capsys, base, same, "--fail-on", "p50:+5%")
    assert code == 0 and "no --fail-on bound breached" in out and SLOWER not in out
    assert "= cpu batch 8, 1 x 1, thread: test_infer[8]: mean +- std 4." in out
    assert "(pytest-benchmark)" in out and "test_infer[1]" in out
    code, out, _ = run(capsys, base, slow, "--fail-on", "p50:+5%", "--json")
    result = json.loads(out)
    pairs = {p["baseline_benchmark"]: p for p in result["comparisons"][0]["pairs"]}
    assert code == 1 and result["baseline_format"] == "pytest-benchmark"
    assert pairs["tests/test_m.py::test_infer[8]"]["verdict"] == SLOWER
    assert pairs["tests/test_m.py::test_infer[1]"]["verdict"] == SAME
    p50 = pairs["tests/test_m.py::test_infer[8]"]["differences"]["p50"]
    assert p50["relative"] == pytest.approx(0.1, abs=0.04) and p50["interval"][0] > 0
    # 200 rounds leave fewer than 10 samples above p99: shown, not tested
    assert pairs["tests/test_m.py::test_infer[8]"]["differences"]["p99"]["interval"] is None
    assert [b["config"] for b in result["breaches"]] == ["cpu batch 8, 1 x 1, thread"]


def test_imported_rounds_keep_the_false_alarm_rate_and_find_a_10_percent_shift():
    """100 seeded pairs of a 200-round benchmark against a 5,000-sample session: identical
    distributions are called changed at about the test's 5 %, a 10 % shift is found."""
    alarms = found = 0
    for seed in range(100):
        bench = BenchmarkFile("b", (parse(entry("test_x", seconds(seed, 200))),))
        for scale in (1.0, 1.1):
            other = Session(results=[session_result(cfg(1), seconds(1000 + seed, 5000, scale))])
            (pair,) = compare_baseline(bench, other, baseline_name="b", other_name="s",
                                       seed=seed).pairs
            if scale == 1.0:
                alarms += pair.verdict != SAME
            else:
                found += pair.verdict == SLOWER
    print(f"imported: {alarms} false alarms, {found} of 100 shifts found")
    assert alarms <= 10 and found >= 90


def parse(raw):
    return parse_benchmark(Fields(raw, "b"))


def test_enough_rounds_test_p99_too(files):
    write_benchmarks, _ = files
    base = load_any(write_benchmarks("b", entry("test_x", seconds(0, 3000))))
    other = Session(results=[session_result(cfg(1), seconds(1, 20_000, scale=1.1))])
    comparison = compare_baseline(base, other, baseline_name="b", other_name="s")
    (pair,) = comparison.pairs
    assert pair.verdict == SLOWER and pair.difference("p99").change == "higher"


def test_without_data_the_summary_is_shown_without_a_verdict(files, capsys):
    write_benchmarks, write_session = files
    summary = entry("test_x", seconds(0, 200), data=False)
    base = write_benchmarks("b", summary)
    slow = write_session("s", session_result(cfg(1), seconds(1, 5000, scale=1.5)))
    code, out, _ = run(capsys, base, slow, "--fail-on", "p99:+5%")
    assert code == 0 and NO_SAMPLES in out and "not checked" in out
    assert "no \"data\" in the file" in out and "--benchmark-save-data" in out
    assert "stored samples: the summaries" not in out  # the reason is the file's, not generic
    stats = summary["stats"]  # mean and stddev as pytest-benchmark reported them, in ms
    assert (f"test_x: mean +- std {stats['mean'] * 1e3:.3f} +- {stats['stddev'] * 1e3:.4f} ms"
            in out)
    code, out, _ = run(capsys, base, slow, "--json")
    (pair,) = json.loads(out)["comparisons"][0]["pairs"]
    assert pair["verdict"] == NO_SAMPLES
    assert pair["differences"]["p50"]["relative"] == pytest.approx(0.5, abs=0.1)
    assert pair["differences"]["p99"]["baseline"] is None


def test_rounds_of_several_calls_or_cpu_time_are_not_judged(files):
    write_benchmarks, _ = files
    other = Session(results=[session_result(cfg(1), seconds(1, 5000, scale=1.5))])
    for kind in (dict(iterations=10), dict(timer="process_time")):
        base = load_any(write_benchmarks("b", entry("test_x", seconds(0, 500), **kind)))
        (pair,) = compare_baseline(base, other, baseline_name="b", other_name="s").pairs
        assert pair.verdict == NO_SAMPLES and not pair.judged
        assert any("10 calls" in r or "CPU time" in r for r in pair.reasons)


# -- pairing -------------------------------------------------------------------------------------

def test_one_benchmark_and_one_configuration_pair_whatever_their_names(files, capsys):
    write_benchmarks, write_session = files
    base = write_benchmarks("b", entry("test_resnet_forward", seconds(0, 300)))
    other = write_session("s", session_result(cfg(4, copies=2), seconds(1, 5000)))
    code, out, _ = run(capsys, base, other)
    assert code == 0 and "= cpu batch 4, 2 x 1, thread: test_resnet_forward: mean" in out
    assert "runs 2 x 1 at once" in out and "without warm-up" in out
    # ...unless its params name another batch size
    base8 = write_benchmarks("b8", entry("test_x", seconds(0, 300), params={"batch_size": 8}))
    code, out, err = run(capsys, base8, other)
    assert code == 2 and err.count("\n") == 1 and not out
    assert "test_x (batch 8: 0 closed-loop 1 x 1 configurations" in err
    assert "1 batch 4, 2 x 1" in err and "--pair NAME=N" in err


def test_benchmarks_pair_by_their_batch_param_with_the_serial_configuration(files, capsys):
    write_benchmarks, write_session = files
    base = write_benchmarks(
        "b", entry("test_x[1]", seconds(0, 300), params={"batch_size": 1}),
        entry("test_x[8]", seconds(1, 300), params={"batch": 8}),
        entry("test_y[8]", seconds(2, 300), params={"batch": 8}),
        entry("test_z", seconds(3, 300)))
    other = write_session("s", session_result(cfg(1), seconds(4, 3000)),
                          session_result(cfg(1, copies=2), seconds(5, 3000)),
                          session_result(cfg(8), seconds(6, 3000)))
    code, out, _ = run(capsys, base, other, "--json")
    comparison = json.loads(out)["comparisons"][0]
    assert code == 0
    assert [(p["baseline_benchmark"], p["config"]) for p in comparison["pairs"]] == [
        ("tests/test_m.py::test_x[1]", "cpu batch 1, 1 x 1, thread")]
    assert comparison["only_in_baseline"] == [
        "test_z (its params name no batch_size or batch)",
        "test_x[8] (batch 8: claimed by 2 benchmarks)",
        "test_y[8] (batch 8: claimed by 2 benchmarks)"]
    assert comparison["only_in_session"] == ["cpu batch 1, 2 x 1, thread",
                                             "cpu batch 8, 1 x 1, thread"]
    # --pair decides: only the pairs given, by name or fullname, N as in the session's table
    code, out, _ = run(capsys, base, other, "--json", "--pair", "test_y[8]=3",
                       "--pair", "tests/test_m.py::test_z=2")
    comparison = json.loads(out)["comparisons"][0]
    assert code == 0
    assert sorted((p["baseline_benchmark"], p["config"]) for p in comparison["pairs"]) == [
        ("tests/test_m.py::test_y[8]", "cpu batch 8, 1 x 1, thread"),
        ("tests/test_m.py::test_z", "cpu batch 1, 2 x 1, thread")]
    assert "test_x[1] (not named by --pair)" in comparison["only_in_baseline"]


@pytest.mark.parametrize("pairs, message", [
    (["test_q=1"], "--pair test_q: no such benchmark in"),
    (["test_x=9"], "--pair test_x=9: "),
    (["test_x=1", "test_x=2"], "paired twice"),
    (["test_x"], "--pair 'test_x': must be NAME=N"),
    (["test_x=0"], "must be NAME=N"),
])
def test_bad_pairs_exit_2_with_one_line(files, capsys, pairs, message):
    write_benchmarks, write_session = files
    base = write_benchmarks("b", entry("test_x", seconds(0, 100)), entry("test_w", seconds(0, 100)))
    other = write_session("s", session_result(cfg(1), seconds(1, 500)),
                          session_result(cfg(2), seconds(1, 500)))
    code, out, err = run(capsys, base, other, *[a for p in pairs for a in ("--pair", p)])
    assert code == 2 and message in err and err.count("\n") == 1 and not out
    if "no such benchmark" in message:
        assert "it has test_x, test_w" in err


def test_nothing_paired_exits_2_naming_the_benchmarks_and_configurations(files, capsys):
    write_benchmarks, write_session = files
    base = write_benchmarks("b", entry("test_a", seconds(0, 100)), entry("test_b", seconds(1, 100)))
    other = write_session("s", session_result(cfg(1), seconds(1, 500)),
                          session_result(cfg(2), seconds(1, 500)))
    code, out, err = run(capsys, base, other)
    assert code == 2 and err.count("\n") == 1 and not out
    assert f"{other}: no configuration pairs with a benchmark of the pytest-benchmark file" in err
    assert "test_a (its params name no batch_size or batch)" in err
    assert "1 batch 1, 1 x 1; 2 batch 2, 1 x 1" in err


def test_pair_is_only_for_a_pytest_benchmark_baseline(files, capsys):
    _, write_session = files
    one = write_session("a", session_result(cfg(1), seconds(1, 500)))
    code, _, err = run(capsys, one, one, "--pair", "test_x=1")
    assert code == 2 and "--pair: only with a pytest-benchmark baseline" in err
    assert parse_pairs(["test_x[a=1]=2"]) == (("test_x[a=1]", 2),)
    with pytest.raises(UserError, match="must be NAME=N"):
        parse_pairs(["=2"])
