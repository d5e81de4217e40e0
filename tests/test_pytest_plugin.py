"""The pytest plugin: the ``latency`` fixture measures inside a test (``pytester`` sessions run
in this process, the plugin loaded by its ``pytest11`` entry point), its summary table, bounds
judged on the interval, ``--latency-json``, and nothing at all where the fixture is unused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from latency_tui.tui import pytest_plugin as plugin

pytest_plugins = ["pytester"]

#: Small measurements: a few hundred samples, a short warm-up.
QUICK = "samples=300, warmup_max=0.3"


#: Plugins the inner sessions do without: slow to start (hypothesis), noisy (asyncio's
#: warning of an unset loop scope), or unfit to run twice in one process (textual-snapshot).
WITHOUT = ("cacheprovider", "hypothesispytest", "asyncio", "textual-snapshot")


@pytest.fixture(scope="module", autouse=True)
def engine_loaded():
    """The engine (and torch) loaded before the first inner session: pytester drops what an
    in-process session imported, and torch cannot be loaded twice in one process."""
    import latency_tui

    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    latency_tui.benchmark(abs, (-1,), samples=10, warmup_max=0.1, progress=False)


def run(pytester, source: str, *args: str):
    pytester.makepyfile(test_inner=textwrap.dedent(source))
    without = [arg for name in WITHOUT for arg in ("-p", f"no:{name}")]
    return pytester.runpytest_inprocess(*without, *args)


def rows(result):
    """The latency property of each call report: ``{nodeid: properties}``."""
    out = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):
        for name, value in report.user_properties:
            if name == "latency" and report.when == "call":
                out[report.nodeid.split("::", 1)[1]] = value
    return out


def test_the_plugin_is_loaded_by_its_entry_point_and_imports_nothing_heavy():
    from importlib.metadata import entry_points

    found = [e for e in entry_points().select(group="pytest11") if e.name == "latency_tui"] \
        if hasattr(entry_points(), "select") else entry_points().get("pytest11", [])
    # A set: Python 3.9's importlib.metadata lists a distribution twice when the source
    # folder's egg-info is on the path too (pluggy registers the plugin once by its name).
    assert {e.value for e in found if e.name == "latency_tui"} == {"latency_tui.tui.pytest_plugin"}
    code = ("import sys, latency_tui.tui.pytest_plugin; heavy = [m for m in ('torch', 'textual', "
            "'numpy', 'latency_tui.core.api') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_measured_function_is_a_row_with_percentiles_and_intervals(pytester):
    result = run(pytester, f"""
        import pytest

        def add(a, b=1):
            return a + b

        @pytest.mark.latency({QUICK})
        def test_add(latency):
            assert latency(add, 1, b=2) == 3
            assert latency.result.status == "finished" and latency.result.samples == 300
            assert latency.session.model["name"] == "add"
            assert latency.result.latency.intervals["p50"]
            with pytest.raises(pytest.fail.Exception, match="once per test"):
                latency(add, 1)
    """)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "latency (ms; [95 % interval])" in out
    line = next(x for x in out.splitlines() if x.startswith("test_inner.py::test_add "))
    assert line.count("[") == 2 and "+-" in line  # p50 [low, high], p99 [..], mean +- std
    props = rows(result)["test_add"]
    assert props["status"] == "finished" and props["batch_size"] == 1
    assert props["p50_ci_ms"][0] <= props["p50_ms"] <= props["p50_ci_ms"][1]
    assert props["samples_per_s"] > 0 and props["bounds"] == []


def test_parametrized_cases_are_rows_of_their_own(pytester):
    result = run(pytester, f"""
        import pytest

        def total(batch):
            return sum(batch)

        def make_batch(batch_size):  # a tuple: spread as the positional arguments
            return (list(range(batch_size)),)

        @pytest.mark.latency({QUICK})
        @pytest.mark.parametrize("batch_size", [1, 16])
        def test_total(latency, batch_size):
            result = latency.measure(total, make_batch, batch_sizes=batch_size)
            assert result is latency.result and result.config.batch_size == batch_size
    """)
    result.assert_outcomes(passed=2)
    props = rows(result)
    assert {k: v["batch_size"] for k, v in props.items()} == {"test_total[1]": 1,
                                                             "test_total[16]": 16}
    lines = result.stdout.str().splitlines()
    assert any(x.startswith("test_inner.py::test_total[1] ") for x in lines)
    assert any(x.startswith("test_inner.py::test_total[16] ") for x in lines)


def test_a_bound_surely_violated_fails_the_test_naming_the_percentile_and_bound(pytester):
    result = run(pytester, """
        import time
        import pytest

        @pytest.mark.latency(samples=150, warmup_max=0.3, p99_ms=0.5)
        def test_p99(latency):
            latency(time.sleep, 0.002)

        @pytest.mark.latency(samples=150, warmup_max=0.3, p50_ms=0.5)
        def test_p50(latency):
            latency(time.sleep, 0.002)
    """)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # 150 samples put no interval around p99: its point estimate is judged, and said so.
    assert "is above the bound p99 <= 0.5 ms (point estimate: too few samples" in out
    assert "is above the bound p50 <= 0.5 ms (its 95% interval starts above it)" in out
    assert "Traceback" not in out and "p99<=0.5 failed" in out
    assert rows(result)["test_p50"]["bounds"][0]["verdict"] == "failed"


def test_a_bound_surely_met_passes(pytester):
    result = run(pytester, f"""
        import pytest

        @pytest.mark.latency({QUICK}, p50_ms=50, p99_ms=50, min_samples_per_s=10)
        def test_fast(latency):
            latency(abs, -3)
            assert [v["verdict"] for v in latency.verdicts] == ["met", "met", "met"]
    """)
    result.assert_outcomes(passed=1)
    assert "p50<=50 met, p99<=50 met, samples/s>=10 met" in result.stdout.str()


def test_an_inconclusive_bound_passes_with_a_warning(pytester):
    result = run(pytester, f"""
        import pytest
        from latency_tui.tui import pytest_plugin

        def straddles(result, key, bound):
            return {{"bound": key, "limit": bound, "verdict": "inconclusive",
                    "why": "p99 1 ms [0.5, 2] straddles the bound p99 <= 1 ms: inconclusive"}}

        @pytest.mark.latency({QUICK}, p99_ms=1)
        def test_undecided(latency, monkeypatch):
            monkeypatch.setattr(pytest_plugin, "judge", straddles)
            latency(abs, -3)
    """)
    result.assert_outcomes(passed=1, warnings=1)
    out = result.stdout.str()
    assert "LatencyInconclusive: latency: p99 1 ms [0.5, 2] straddles the bound" in out
    assert "p99<=1 inconclusive" in out


def bound_result(value, interval, samples=5000):
    latency = SimpleNamespace(percentiles={"p99": value}, intervals={"p99": interval} if interval
                              else {}, confidence=0.95)
    return SimpleNamespace(latency=latency, samples=samples, throughput=None)


@pytest.mark.parametrize("interval, verdict", [
    ((6.0, 7.0), "failed"), ((3.0, 4.0), "met"), ((4.0, 6.0), "inconclusive"), (None, "met")])
def test_a_bound_is_judged_on_the_interval(interval, verdict):
    judged = plugin.judge(bound_result(4.5, interval), "p99_ms", 5)
    assert judged["verdict"] == verdict
    if verdict == "inconclusive":
        assert "straddles the bound p99 <= 5 ms: inconclusive" in judged["why"]
    if interval is None:
        assert "point estimate" in judged["why"]


def test_bad_input_fails_the_test_with_one_line(pytester):
    result = run(pytester, """
        import pytest

        def add(a, b=1):
            return a + b

        def test_three(latency):
            latency.measure(add, ("x", "y", "z"), samples=10)

        @pytest.mark.latency(batch_sizes=[1, 8])
        def test_sweep(latency):
            latency(add, 1)

        @pytest.mark.latency(p99_ms=-1)
        def test_bound(latency):
            latency(add, 1)
    """)
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "latency: the model add, called with 3 positional arguments" in out
    assert "parametrize the test over batch_sizes instead" in out
    assert "a bound is a positive number" in out
    assert "Traceback" not in out and "direct cause" not in out


def test_latency_json_writes_one_session_of_every_measured_test(pytester, tmp_path):
    from latency_tui.core.session import load_session

    path = tmp_path / "tests.json"
    result = run(pytester, f"""
        import pytest

        @pytest.mark.latency({QUICK})
        @pytest.mark.parametrize("n", [1, 2])
        def test_sum(latency, n):
            latency(sum, range(n))

        def test_unmeasured():
            pass
    """, "--latency-json", str(path))
    result.assert_outcomes(passed=3)
    assert f"latency: 2 measurements written to {path}" in result.stdout.str()
    session = load_session(path)
    assert [r.trial["test"] for r in session.results] == ["test_inner.py::test_sum[1]",
                                                          "test_inner.py::test_sum[2]"]
    assert [r.trial["run"] for r in session.results] == [1, 2]
    assert [r.trial["model"] for r in session.results] == ["sum", "sum"]
    assert [run["test"] for run in session.runs] == [r.trial["test"] for r in session.results]
    assert all(r.status == "finished" and r.latency.count == 300 for r in session.results)


def test_unused_the_plugin_prints_nothing(pytester):
    result = run(pytester, """
        def test_plain():
            assert True
    """)
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "latency (ms" not in out and "latency:" not in out and "plugins: latency-tui" in out


def test_disabled_the_function_runs_once_and_nothing_is_measured(pytester):
    result = run(pytester, """
        calls = []

        def record(x):
            calls.append(x)
            return x * 2

        def test_once(latency):
            assert latency(record, 21) == 42
            assert calls == [21] and latency.result is None
    """, "--latency-disable")
    result.assert_outcomes(passed=1)
    assert "latency (ms" not in result.stdout.str()


def test_arguments_and_keywords_are_one_call():
    def fn(a, b, *, c=0):
        return a + b + c

    model, inputs = plugin.call_form(fn, (1,), {"b": 2, "c": 3})
    assert model is fn and inputs == {"a": 1, "b": 2, "c": 3}

    def positional(a, /, b=0):
        return a + b

    model, inputs = plugin.call_form(positional, (1,), {"b": 2})
    assert model(*inputs) == 3 and model.__qualname__ == positional.__qualname__
    assert plugin.call_form(fn, (1, 2), {}) == (fn, (1, 2))
    assert plugin.call_form(fn, (), {"a": 1, "b": 2}) == (fn, {"a": 1, "b": 2})
    assert plugin.call_form(fn, (), {}) == (fn, None)


BLOG_MODEL = """
    from dataclasses import dataclass

    import pytest
    import torch


    @dataclass
    class Features:
        categorical: torch.Tensor
        numerical: torch.Tensor


    class Tabular(torch.nn.Module):
        def __init__(self, depth):
            super().__init__()
            self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(10, 4) for _ in range(3))
            layers = [torch.nn.Linear(16, 32), torch.nn.ReLU()]
            for _ in range(depth - 1):
                layers += [torch.nn.Linear(32, 32), torch.nn.ReLU()]
            self.mlp = torch.nn.Sequential(*layers, torch.nn.Linear(32, 1))

        def forward(self, features):
            embedded = [e(features.categorical[:, i]) for i, e in enumerate(self.embeddings)]
            return self.mlp(torch.cat([*embedded, features.numerical], dim=1))


    def make_inputs(batch_size):
        generator = torch.Generator().manual_seed(0)
        return Features(torch.randint(0, 10, (batch_size, 3), generator=generator),
                        torch.randn(batch_size, 4, generator=generator))


    @pytest.mark.latency(samples=100, warmup_max=0.3)
    @pytest.mark.parametrize("depth", [4, 8])
    @pytest.mark.parametrize("batch_size", [1, 64])
    def test_tabular(latency, batch_size, depth):
        result = latency.measure(Tabular(depth), make_inputs, batch_sizes=batch_size)
        assert result.config.batch_size == batch_size
        throughput = result.throughput
        assert throughput.samples_per_s == pytest.approx(throughput.inferences_per_s * batch_size)
        assert latency.session.model["name"] == "Tabular"
"""


def test_the_blog_model_runs_through_the_fixture(pytester):
    pytest.importorskip("torch")
    result = run(pytester, BLOG_MODEL)
    result.assert_outcomes(passed=4)
    props = rows(result)
    assert sorted(props) == ["test_tabular[1-4]", "test_tabular[1-8]", "test_tabular[64-4]",
                             "test_tabular[64-8]"]
    assert {k: v["batch_size"] for k, v in props.items()}["test_tabular[64-8]"] == 64
    lines = result.stdout.str().splitlines()
    assert sum(x.startswith("test_inner.py::test_tabular[") for x in lines) == 4


def test_the_first_call_is_made_off_pytests_thread(pytester):
    # torch work on pytest's (main) thread slowed the engine's timing threads up to 6x: the
    # fixture's own call of fn is made in a thread of its own.
    result = run(pytester, f"""
        import threading
        import pytest

        seen = []

        def work():
            seen.append(threading.current_thread() is threading.main_thread())
            return 7

        @pytest.mark.latency({QUICK})
        def test_work(latency):
            assert latency(work) == 7
            assert seen[0] is False
    """)
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_pytest_xdist_workers_measurements_are_merged_into_latency_json(pytester, tmp_path):
    """With -n the measurements were made in the workers and only said to be missing from the
    session file; each worker now hands its own back and the file holds every test's."""
    pytest.importorskip("xdist")
    from latency_tui.core.session import load_session

    path = tmp_path / "tests.json"
    pytester.makepyfile(test_inner=textwrap.dedent(f"""
        import pytest

        @pytest.mark.latency({QUICK})
        @pytest.mark.parametrize("n", [1, 2, 3, 4])
        def test_sum(latency, n):
            latency(sum, range(n))
    """))
    without = [arg for name in WITHOUT for arg in ("-p", f"no:{name}")]
    result = pytester.runpytest_subprocess(*without, "-p", "xdist", "-n", "2",
                                           "--latency-json", str(path), timeout=300)
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert f"latency: 4 measurements written to {path}" in out and "not in the session" not in out
    session = load_session(path)
    assert sorted(r.trial["test"] for r in session.results) == [
        f"test_inner.py::test_sum[{n}]" for n in (1, 2, 3, 4)]
    assert [r.trial["run"] for r in session.results] == [1, 2, 3, 4]
    assert [run["test"] for run in session.runs] == [r.trial["test"] for r in session.results]
    assert all(r.status == "finished" and r.latency.count == 300 and r.trial["model"] == "sum"
               for r in session.results)
