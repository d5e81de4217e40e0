"""``latency-tui compare``: the verdict's error rates checked by simulation on synthetic sessions
(no false alarm on identical distributions, a 5 % p99 shift found), configurations matched by
config, sessions without samples, noise, and the exit codes CI relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latency_tui.core import samplestore
from latency_tui.core.compare import (
    FASTER, HIGHER, NO_SAMPLES, NOISY, NOT_COMPARABLE, SAME, SLOWER, UNTESTED,
    bootstrap_percentile, compare_results, compare_sessions, parse_bound,
)
from latency_tui.core.errors import UserError
from latency_tui.core.measurement import ConfigResult, Timeline
from latency_tui.core.session import Session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.core.stats import summarize, throughput
from latency_tui.tui.cli import main

NOISE = {"noise": {"verdict": "noisy", "reasons": ["other processes kept 1.9 CPUs busy"]}}


def latencies(rng, n, scale=1.0, sigma=0.25, median_ns=1e6, slow_mode=False):
    """Latencies (ns, ascending): a lognormal body; with ``slow_mode`` 2 % of them 1.5 to 3
    times slower (the tail p99 then lives in, which makes p99 much harder to pin down)."""
    body = median_ns * np.exp(rng.normal(0.0, sigma, n))
    if slow_mode:
        slow = rng.random(n) < 0.02
        body[slow] *= 1.5 + rng.exponential(0.5, int(slow.sum()))
    return np.sort((body * scale).astype(np.int64))


def result(values, config=None, *, stored=True, details=None, per_second=None, status="finished"):
    config = config or RunConfig(device="fake")
    timeline = None
    duration = 10.0
    if per_second is not None:
        counts = tuple(int(c) for c in per_second)
        nones = (None,) * len(counts)
        timeline = Timeline(1.0, counts, nones, nones, nones)
        duration = float(len(counts))
    return ConfigResult(config, status, samples=values.size, duration_s=duration,
                        latency=summarize(values, presorted=True),
                        throughput=throughput(values.size, duration, config.batch_size, timeline),
                        timeline=timeline, details=dict(details or {}),
                        latency_samples=samplestore.store_sorted(values) if stored else None)


def test_no_false_alarm_on_identical_distributions():
    """200 seeded pairs, each from one distribution (every other one with a slow mode): the
    verdict says "no significant change" in at least 95 % of them by design (p50 and p99 at
    97.5 % each); 8 % is the allowance here."""
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        pair = compare_results(result(latencies(rng, 4000, slow_mode=seed % 2 == 1)),
                               result(latencies(rng, 4000, slow_mode=seed % 2 == 1)), seed=seed)
        assert pair.verdict in (SAME, SLOWER, FASTER)
        alarms += pair.verdict != SAME
    print(f"false alarms: {alarms} of 200 ({alarms / 2:.1f} %)")
    assert alarms <= 16


def test_a_5_percent_p99_shift_is_found_with_20k_samples():
    found = 0
    for seed in range(100):
        rng = np.random.default_rng(10_000 + seed)
        pair = compare_results(result(latencies(rng, 20_000)),
                               result(latencies(rng, 20_000, scale=1.05)), seed=seed)
        found += pair.difference("p99").change == HIGHER and pair.verdict == SLOWER
    print(f"5 % p99 shift found in {found} of 100 trials")
    assert found >= 90


def test_the_histogram_form_keeps_both_rates(monkeypatch):
    """Past the store's cap the test runs on the log histogram, its interval widened by the
    histogram's error: still quiet on identical runs, still finds a 5 % shift."""
    monkeypatch.setattr(samplestore, "STORE_CAP", 1000)
    alarms = found = 0
    for seed in range(40):
        rng = np.random.default_rng(20_000 + seed)
        base = result(latencies(rng, 20_000))
        assert not base.latency_samples.exact
        same = compare_results(base, result(latencies(rng, 20_000)), seed=seed)
        slower = compare_results(base, result(latencies(rng, 20_000, scale=1.05)), seed=seed)
        alarms += same.verdict != SAME
        found += slower.difference("p99").change == HIGHER
    print(f"histogram form: {alarms} false alarms, {found} found, of 40")
    assert alarms <= 3 and found >= 34


def test_the_bootstrap_draws_match_resampling_with_replacement():
    """Drawing each resample's percentile from its Beta law is the ordinary bootstrap."""
    rng = np.random.default_rng(3)
    values = latencies(rng, 400)
    table = np.unique(values, return_counts=True)
    for q in (0.5, 0.9, 0.99):
        fast = bootstrap_percentile(table, q, 20_000, np.random.default_rng(1))
        picks = rng.integers(0, values.size, size=(20_000, values.size))
        slow = np.percentile(values[picks], 100 * q, axis=1)
        for level in (0.025, 0.25, 0.5, 0.75, 0.975):
            assert np.quantile(fast, level) == pytest.approx(np.quantile(slow, level), rel=0.01)


def test_configurations_are_matched_by_config_not_by_order():
    rng = np.random.default_rng(5)
    configs = {b: RunConfig(device="fake", batch_size=b) for b in (1, 2, 4, 8)}
    base = Session(results=[result(latencies(rng, 5000), configs[b]) for b in (1, 2, 4)])
    other = Session(results=[
        result(latencies(rng, 5000, scale=1.3), configs[4]),
        result(latencies(rng, 5000), configs[2]),
        result(latencies(rng, 5000), configs[8]),
        result(latencies(rng, 5000), RunConfig(device="fake", batch_size=2, copy_mode="process")),
    ])
    comparison = compare_sessions(base, other)
    verdicts = {(p.config.batch_size, p.config.copy_mode): p.verdict for p in comparison.pairs}
    assert verdicts == {(2, "thread"): SAME, (4, "thread"): SLOWER}
    assert comparison.only_in_baseline == ("fake batch 1, 1 x 1, thread",)
    assert comparison.only_in_other == ("fake batch 8, 1 x 1, thread",
                                        "fake batch 2, 1 x 1, process")


def test_without_stored_samples_the_summaries_are_compared_without_a_verdict():
    rng = np.random.default_rng(6)
    pair = compare_results(result(latencies(rng, 5000), stored=False),
                           result(latencies(rng, 5000, scale=1.5)))
    assert pair.verdict == NO_SAMPLES and not pair.judged
    p99 = pair.difference("p99")
    assert p99.relative == pytest.approx(0.5, abs=0.1) and p99.change == UNTESTED


def test_noisy_and_unfinished_results_are_not_judged():
    rng = np.random.default_rng(7)
    quiet, slow = result(latencies(rng, 5000)), latencies(rng, 5000, scale=1.3)
    noisy = compare_results(quiet, result(slow, details=NOISE))
    assert noisy.verdict == NOISY and "1.9 CPUs" in noisy.reasons[0]
    assert compare_results(quiet, result(slow, details=NOISE), allow_noisy=True).verdict == SLOWER
    assert compare_results(quiet, result(slow, status="failed")).verdict == NOT_COMPARABLE


def test_a_throughput_drop_is_tested_on_the_timeline():
    rng = np.random.default_rng(8)
    values = latencies(rng, 5000)
    steady = rng.normal(1000, 20, size=12)
    pair = compare_results(result(values, per_second=steady),
                           result(values, per_second=steady * 0.9))
    diff = pair.difference("throughput")
    assert diff.change == "lower" and diff.relative == pytest.approx(-0.1, abs=0.01)
    assert diff.interval[0] < -0.1 < diff.interval[1] < -0.05
    short = compare_results(result(values, per_second=steady[:4]), result(values))
    assert short.difference("throughput").change == UNTESTED


@pytest.mark.parametrize("text, metric, limit", [
    ("p99:+5%", "p99", 5.0), ("p99:5%", "p99", 5.0), (" P99.9 : +0.5 % ", "p99.9", 0.5),
    ("throughput:-3%", "throughput", -3.0), ("throughput:3%", "throughput", -3.0),
])
def test_bounds_are_parsed(text, metric, limit):
    bound = parse_bound(text)
    assert (bound.metric, bound.limit_pct) == (metric, limit)


# -- the command line ---------------------------------------------------------------------------

@pytest.fixture
def sessions(tmp_path):
    """Files of a baseline and of a run whose p99 (and p50) rose by 10 %."""
    def write(name, scale=1.0, *, stored=True, details=None, seed=0, per_second=None,
              batches=(1, 2)):
        rng = np.random.default_rng(seed)
        results = [result(latencies(rng, 20_000, scale=scale), RunConfig("fake", batch_size=b),
                          stored=stored, details=details, per_second=per_second)
                   for b in batches]
        path = tmp_path / f"{name}.json"
        save_session(Session(results=results), path)
        return str(path)
    return write


def run(capsys, *args):
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_regression_beyond_the_bound_exits_1_and_within_it_0(sessions, capsys):
    base, slow = sessions("a"), sessions("b", 1.1, seed=1)
    code, out, _ = run(capsys, base, slow, "--fail-on", "p99:+5%")
    assert code == 1 and "FAIL --fail-on p99:+5%" in out and out.count("slower") == 2
    assert run(capsys, base, slow, "--fail-on", "p99:+20%")[0] == 0
    assert run(capsys, base, slow)[0] == 0  # no bound, no failure
    assert run(capsys, base, sessions("c", seed=2), "--fail-on", "p99:+0%")[0] == 0


def test_json_output_carries_the_verdicts_and_the_exit_code(sessions, capsys):
    base, slow, fast = sessions("a"), sessions("b", 1.1, seed=1), sessions("c", 0.9, seed=2)
    code, out, _ = run(capsys, base, slow, fast, "--fail-on", "p50:+5%", "--json")
    document = json.loads(out)
    assert code == 1 == document["exit_code"]
    assert [[p["verdict"] for p in c["pairs"]] for c in document["comparisons"]] == [
        [SLOWER, SLOWER], [FASTER, FASTER]]
    assert {b["session"] for b in document["breaches"]} == {slow}
    p99 = document["comparisons"][0]["pairs"][0]["differences"]["p99"]
    assert p99["relative"] == pytest.approx(0.1, abs=0.03) and p99["interval"][0] > 0


@pytest.mark.parametrize("bound, message", [
    ("p99:5", "--fail-on 'p99:5': must be METRIC:+PCT%"),
    ("foo:+5%", "--fail-on 'foo:+5%': unknown metric 'foo'"),
    ("p99:-5%", "a latency bound is a rise"),
    ("throughput:+3%", "a throughput bound is a drop"),
    ("throughput:-100%", "a drop must be below 100 %"),
])
def test_a_malformed_bound_exits_2_with_one_line(sessions, capsys, bound, message):
    code, out, err = run(capsys, sessions("a"), sessions("b"), "--fail-on", bound)
    assert code == 2 and message in err and err.count("\n") == 1 and not out


def test_bad_files_exit_2_naming_them(sessions, tmp_path, capsys):
    base = sessions("a")
    code, _, err = run(capsys, base, str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err and err.count("\n") == 1
    code, _, err = run(capsys, base)
    assert code == 2 and "at least one to compare" in err
    elsewhere = sessions("d", batches=(4,))
    code, _, err = run(capsys, base, elsewhere)
    assert code == 2 and f"{elsewhere}: no configuration matches" in err


def test_noisy_sessions_are_not_judged_unless_allowed(sessions, capsys):
    base, slow = sessions("a"), sessions("b", 1.1, seed=1, details=NOISE)
    code, out, _ = run(capsys, base, slow, "--fail-on", "p99:+5%")
    assert code == 0 and out.count(NOISY) >= 2 and "not checked" in out
    assert run(capsys, base, slow, "--fail-on", "p99:+5%", "--allow-noisy")[0] == 1


def test_sessions_without_samples_pass_with_a_note(sessions, capsys):
    base, slow = sessions("a", stored=False), sessions("b", 1.5, seed=1)
    code, out, _ = run(capsys, base, slow, "--fail-on", "p99:+5%")
    assert code == 0 and out.count(NO_SAMPLES) >= 2 and "not checked" in out


def test_a_throughput_bound_on_the_timeline(sessions, capsys):
    rng = np.random.default_rng(9)
    steady = rng.normal(2000, 30, size=10)
    base = sessions("a", per_second=steady)
    lower = sessions("b", seed=1, per_second=steady * 0.9)
    assert run(capsys, base, lower, "--fail-on", "throughput:-3%")[0] == 1
    assert run(capsys, base, lower, "--fail-on", "throughput:-15%")[0] == 0


def test_parse_bound_refuses_with_a_user_error():
    with pytest.raises(UserError, match="unknown metric 'mean'"):
        parse_bound("mean:+5%")
