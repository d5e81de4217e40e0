"""The compact store of a configuration's samples in the session: exact to its stated resolution,
small, refused field by field when damaged, and absent (not an error) in older files."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pytest

from helpers import fake_plan
from latency_tui.core import samplestore
from latency_tui.core.engine import Engine
from latency_tui.core.errors import UserError
from latency_tui.core.histogram import LogHistogram
from latency_tui.core.measurement import ConfigResult
from latency_tui.core.samplestore import (
    HISTOGRAM, QUANTUM_FRACTION, StoredSamples, pack, store_sorted, store_stream, unpack,
)
from latency_tui.core.session import Session, load_session, save_session
from latency_tui.core.specs import RunConfig
from latency_tui.core.stats import summarize
from latency_tui.core.streams import SampleStream


def lognormal(n, median_ns=10e6, sigma=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return np.sort((median_ns * np.exp(rng.normal(0.0, sigma, n))).astype(np.int64))


def reloaded(store):
    return StoredSamples.from_dict(json.loads(json.dumps(store.to_dict())), "s")


@pytest.mark.parametrize("median_ns, sigma", [(84e3, 0.1), (10e6, 0.3), (2e3, 0.5), (5e9, 0.2)])
def test_every_sample_comes_back_within_half_a_quantum(median_ns, sigma):
    values = lognormal(20_000, median_ns, sigma)
    store = reloaded(store_sorted(values))
    assert store == store_sorted(values) and store.exact and store.count == values.size
    quantum = store.quantum_ns
    assert quantum & (quantum - 1) == 0  # a power of two
    assert quantum <= max(1.0, np.median(values) * QUANTUM_FRACTION)
    decoded = store.sorted_ns()
    assert np.all(np.abs(decoded - values) <= quantum / 2)
    assert np.all(np.diff(decoded) >= 0)
    ranks = np.array([0, 9_999, 19_799, 19_999])
    assert np.all(np.abs(store.values_at_ranks(ranks) - values[ranks]) <= quantum / 2)


def test_small_latencies_are_kept_to_the_nanosecond_and_a_single_sample_too():
    values = np.array([3, 5, 5, 9, 1000], dtype=np.int64)
    assert np.array_equal(reloaded(store_sorted(values)).sorted_ns(), values)
    assert reloaded(store_sorted(np.array([7]))).sorted_ns().tolist() == [7.0]
    assert store_sorted(np.array([], dtype=np.int64)) is None


def test_past_the_cap_the_log_histogram_is_stored_with_its_relative_error(monkeypatch):
    monkeypatch.setattr(samplestore, "STORE_CAP", 1000)
    values = lognormal(5000)
    store = reloaded(store_sorted(values))
    assert store.encoding == HISTOGRAM and not store.exact and store.count == 5000
    error = store.relative_error
    assert error == samplestore.HISTOGRAM_RELATIVE_ERROR
    ranks = np.arange(0, 5000, 7)
    got = store.values_at_ranks(ranks)
    assert np.all(np.abs(got / values[ranks] - 1) <= error + 1e-12)
    # midpoints are clamped to the exact extremes, as LogHistogram.value_at_rank does
    assert values[0] <= got.min() and store.values_at_ranks([4999])[0] <= values[-1]


def test_a_stream_is_stored_exactly_below_its_cap_and_as_its_histogram_past_it():
    values = lognormal(3000)
    below, past = SampleStream(cap=10_000), SampleStream(cap=1000)
    for stream in (below, past):
        for part in np.array_split(values[::-1], 7):  # unsorted, in blocks, as copies deliver
            stream.add(part)
    assert store_stream(below).exact and store_stream(below).count == 3000
    stored = store_stream(past)
    assert stored.encoding == HISTOGRAM and stored.count == 3000
    hist = past.histogram
    assert stored.values_at_ranks([1500])[0] == pytest.approx(hist.value_at_rank(1500))
    assert store_stream(SampleStream()) is None


def test_size_per_million_samples():
    """The figures the README states: bytes of JSON per million samples stored exactly."""
    sizes = {}
    for name, median, sigma in (("84 us, sigma 0.1", 84e3, 0.1), ("10 ms, sigma 0.3", 10e6, 0.3)):
        store = store_sorted(lognormal(1_000_000, median, sigma, seed=1))
        sizes[name] = len(json.dumps(store.to_dict()))
    print("bytes per million samples:", sizes)
    assert sizes["84 us, sigma 0.1"] < 25_000 and sizes["10 ms, sigma 0.3"] < 70_000
    histogram = LogHistogram(samplestore.HISTOGRAM_RELATIVE_ERROR)
    histogram.add(lognormal(1_000_000, 10e6, 0.3))
    assert len(json.dumps(samplestore.store_histogram(histogram).to_dict())) < 3_000


def test_pack_round_trips_every_width():
    for top in (0, 255, 65_535, 2 ** 32 - 1, 2 ** 40):
        values = np.array([0, 1, top, top // 2], dtype=np.int64)
        assert np.array_equal(unpack(pack(values), "x", size=4), values)


@pytest.fixture
def session_file(tmp_path):
    values = lognormal(2000)
    result = ConfigResult(RunConfig(device="fake"), "finished", samples=2000,
                          latency=summarize(values, presorted=True),
                          latency_samples=store_sorted(values))
    path = tmp_path / "s.json"
    save_session(Session(results=[result]), path)
    return path


def test_a_saved_store_loads_as_it_was(session_file):
    (result,) = load_session(session_file).results
    assert result.latency_samples == store_sorted(lognormal(2000))


def test_an_old_session_without_samples_loads(session_file):
    data = json.loads(session_file.read_text())
    del data["results"][0]["latency_samples"]
    session_file.write_text(json.dumps(data))
    (result,) = load_session(session_file).results
    assert result.latency_samples is None and result.latency is not None


def _bomb():
    return base64.b64encode(zlib.compress(b"\x01" + b"\x00" * 50_000_000)).decode()


@pytest.mark.parametrize("change, field, message", [
    ({"encoding": "gzip"}, "encoding", "must be 'sorted-delta-zlib' or"),
    ({"unit": "us"}, "unit", "must be 'ns'"),
    ({"count": "many"}, "count", "must be an integer"),
    ({"count": 0}, "count", "must be at least 1"),
    ({"count": 2001}, "deltas", "holds 1999 values, expected 2000"),
    ({"quantum_ns": 0}, "quantum_ns", "must be at least 1"),
    ({"first": 1.5}, "first", "must be an integer"),
    ({"deltas": "not base64!"}, "deltas", "not base64 zlib data"),
    ({"deltas": base64.b64encode(b"not zlib").decode()}, "deltas", "not base64 zlib data"),
    ({"deltas": base64.b64encode(zlib.compress(b"\x03abc")).decode()}, "deltas", "bad width"),
    ({"deltas": _bomb()}, "deltas", "bad width or length"),
    ({"deltas": pack(np.full(1999, 2 ** 61))}, "deltas", "values reach"),
    ({"deltas": None}, "deltas", "is missing"),
    ({"encoding": HISTOGRAM, "relative_error": 0.005, "min_ns": 1.0, "max_ns": 2.0,
      "first": 10, "deltas": pack(np.array([1])), "counts": pack(np.array([5, 5]))},
     "counts", "must be 2000 samples in nonzero buckets"),
    ({"encoding": HISTOGRAM, "relative_error": 0.005, "min_ns": 1.0, "max_ns": 2.0,
      "first": 10, "deltas": pack(np.array([0])), "counts": pack(np.array([1000, 1000]))},
     "deltas", "bucket indices must rise"),
    ({"encoding": HISTOGRAM, "relative_error": 0.7, "min_ns": 1.0, "max_ns": 2.0},
     "relative_error", "must be below 0.5"),
    ({"encoding": HISTOGRAM, "relative_error": 0.005, "min_ns": 3.0, "max_ns": 2.0},
     "max_ns", "is below min_ns"),
])
def test_damaged_samples_are_refused_naming_the_field(session_file, change, field, message):
    data = json.loads(session_file.read_text())
    data["results"][0]["latency_samples"].update(change)
    session_file.write_text(json.dumps(data))
    with pytest.raises(UserError) as refused:
        load_session(session_file)
    text = str(refused.value)
    assert f"results[0].latency_samples.{field}: " in text and message in text
    assert "\n" not in text


def test_a_store_that_is_not_an_object_is_refused(session_file):
    data = json.loads(session_file.read_text())
    data["results"][0]["latency_samples"] = [1, 2, 3]
    session_file.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"results\[0\]\.latency_samples: must be an object"):
        load_session(session_file)


def test_the_engine_stores_every_sample_of_a_configuration(tmp_path):
    (result,) = Engine(fake_plan(duration_s=0.3), lambda event: None).run()
    stored = result.latency_samples
    assert stored is not None and stored.exact and stored.count == result.samples > 100
    values = stored.sorted_ns()
    median = np.percentile(values, 50) / 1e6
    assert median == pytest.approx(result.latency["p50"], abs=stored.quantum_ns / 1e6)
    path = tmp_path / "s.json"
    save_session(Session(results=[result]), path)
    assert load_session(path).results[0].latency_samples == stored
