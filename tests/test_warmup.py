from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest
from latency_tui.core.specs import WarmupPolicy
from latency_tui.core.warmup import WarmupTracker, windows_agree

MS = 1_000_000
T0 = 5_000_000_000_000  # an arbitrary monotonic clock reading


def policy(**overrides) -> WarmupPolicy:
    base = {"min_iterations": 10, "max_iterations": 5000, "min_s": 0.0, "max_s": 1e9,
            "window": 20, "tolerance": 0.05}
    base.update(overrides)
    return WarmupPolicy(**base)


def run(tracker: WarmupTracker, stream: Iterable[float], step_ns: int | None = None) -> int:
    """Feed ``stream`` until the tracker says stop; the clock advances by each latency, or by
    ``step_ns`` when given. Returns the number of records made."""
    now = T0
    for count, latency in enumerate(stream, start=1):
        now += int(latency) if step_ns is None else step_ns
        if tracker.record(int(latency), now):
            return count
    raise AssertionError("the stream ran out before warm-up ended")


def decaying(tau: float, n: int = 5000, seed: int = 0) -> np.ndarray:
    """10 ms falling exponentially to 1 ms, with 0.2 % seeded noise."""
    i = np.arange(n)
    clean = MS + 9 * MS * np.exp(-i / tau)
    return clean * (1 + 0.002 * np.random.default_rng(seed).standard_normal(n))


def alternating_blocks(window: int, n: int = 5000, seed: int = 0) -> np.ndarray:
    """1 ms and 3 ms in alternating blocks of ``window`` samples, with 1 % noise.

    With an odd window each window holds a strict majority of one mode, and the two windows
    compared always hold majorities of opposite modes: their medians sit a mode apart at
    every step, so this stream never settles however long it runs.
    """
    levels = np.where((np.arange(n) // window) % 2 == 0, MS, 3 * MS)
    return levels * (1 + 0.01 * np.random.default_rng(seed).standard_normal(n))


def drifting(n: int = 5000) -> np.ndarray:
    """Alternating 1x / 3x samples on a level that climbs 0.5 % per inference (throttling)."""
    i = np.arange(n)
    return MS * 1.005**i * np.where(i % 2 == 0, 1.0, 3.0)


# -- windows_agree --------------------------------------------------------------------------------


def noisy_window(seed: int, level: float = MS, n: int = 20) -> np.ndarray:
    return level * (1 + 0.005 * np.random.default_rng(seed).standard_normal(n))


@pytest.mark.parametrize(
    ("current", "agree"),
    [
        (noisy_window(1), True),
        (noisy_window(1, level=1.03 * MS), True),
        (noisy_window(1, level=0.97 * MS), True),
        (noisy_window(1, level=1.08 * MS), False),
        (noisy_window(1, level=0.92 * MS), False),
        (np.append(noisy_window(1, n=19), 80 * MS), True),  # one stray slow inference
        (np.append(noisy_window(1, n=17), [80 * MS] * 3), True),  # three of twenty
        (MS * np.tile([0.8, 1.2], 10), False),  # same median, far wider spread
    ],
)
def test_windows_agree(current: np.ndarray, agree: bool) -> None:
    assert windows_agree(noisy_window(0), current, 0.05) is agree


@pytest.mark.parametrize("tolerance", (0.01, 0.05, 0.2))
def test_windows_agree_on_the_median_bound(tolerance: float) -> None:
    previous = np.full(9, 1000.0)
    assert windows_agree(previous, previous * (1 + 0.9 * tolerance), tolerance)
    assert not windows_agree(previous, previous * (1 + 1.1 * tolerance), tolerance)


@pytest.mark.parametrize(("previous", "current", "agree"),
                         [([0, 0, 0], [0, 0, 0], True), ([0, 0, 0], [1, 1, 1], False),
                          ([0, 0, 0], [0, 0, 9], False)])
def test_windows_agree_with_zero_medians(previous: list, current: list, agree: bool) -> None:
    assert windows_agree(np.array(previous), np.array(current), 0.05) is agree


# -- WarmupTracker ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", (5.0, 15.0, 30.0))
@pytest.mark.parametrize("window", (10, 20))
@pytest.mark.parametrize("seed", (0, 1))
def test_decaying_stream_stops_once_flat_and_not_before(tau: float, window: int,
                                                        seed: int) -> None:
    warmup = policy(window=window)
    stream = decaying(tau, seed=seed)
    tracker = WarmupTracker(warmup)
    stop = run(tracker, stream)
    assert tracker.stable and tracker.iterations == stop

    # Against the noise-free curve: how far the two windows' medians and relative spreads
    # lie apart when the tracker has recorded ``records`` inferences.
    clean = MS + 9 * MS * np.exp(-np.arange(5000) / tau)

    def gaps(records: int) -> tuple:
        previous = clean[records - 2 * window: records - window]
        current = clean[records - window: records]
        spreads = [np.subtract(*np.percentile(w, (75, 25))) / np.median(w)
                   for w in (previous, current)]
        return np.median(previous) / np.median(current) - 1, abs(spreads[0] - spreads[1])

    assert max(gaps(stop)) <= 1.5 * warmup.tolerance  # flat by then: did not stop before
    assert clean[stop - 1] <= (1 + 3 * warmup.tolerance) * MS  # close to the 1 ms floor
    settled = next(t for t in range(1 + 2 * window, 5000)
                   if max(gaps(t)) <= 0.5 * warmup.tolerance)
    assert stop <= settled  # and did not linger once flat


@pytest.mark.parametrize(
    ("min_iterations", "window"),
    [(10, 20), (41, 20), (100, 20), (0, 5), (1, 1), (50, 3), (500, 50)],
)
def test_constant_stream_stops_at_the_first_possible_iteration(min_iterations: int,
                                                               window: int) -> None:
    stream = np.full(5000, 2 * MS)
    stream[0] = 40 * MS  # the cold first inference stays out of the windows
    tracker = WarmupTracker(policy(min_iterations=min_iterations, window=window))
    assert run(tracker, stream) == max(min_iterations, 1 + 2 * window)
    assert tracker.stable
    assert tracker.first_ns == 40 * MS


@pytest.mark.parametrize(
    ("stream", "window"),
    [(alternating_blocks(5), 5), (alternating_blocks(21), 21), (drifting(), 20),
     (drifting(), 7)],
)
def test_unsettled_stream_runs_to_max_iterations(stream: np.ndarray, window: int) -> None:
    tracker = WarmupTracker(policy(window=window, max_iterations=2000))
    assert run(tracker, stream) == 2000
    assert tracker.iterations == 2000
    assert not tracker.stable


@pytest.mark.parametrize(("max_s", "records"), [(0.5, 50), (0.0101, 2), (0.001, 1)])
def test_max_seconds_bound(max_s: float, records: int) -> None:
    stream = alternating_blocks(5)
    stream[0] = 10 * MS  # time starts at the start of this first inference: T0
    tracker = WarmupTracker(policy(window=5, max_s=max_s))
    assert run(tracker, stream, step_ns=10 * MS) == records
    assert not tracker.stable
    assert tracker.elapsed_s == pytest.approx(records * 0.01)


@pytest.mark.parametrize(("min_s", "records"), [(0.0, 11), (0.05, 11), (0.5, 50), (1.0, 100)])
def test_min_seconds_bound(min_s: float, records: int) -> None:
    stream = np.full(5000, 10 * MS)
    tracker = WarmupTracker(policy(window=5, min_iterations=0, min_s=min_s))
    assert run(tracker, stream, step_ns=10 * MS) == records
    assert tracker.stable


def test_explicit_start_sets_the_clock() -> None:
    tracker = WarmupTracker(policy(max_s=1.0), start_ns=T0)
    assert tracker.elapsed_s == 0.0 and tracker.first_ns is None
    assert not tracker.record(3 * MS, T0 + 500 * MS)
    assert tracker.elapsed_s == pytest.approx(0.5)
    assert tracker.record(3 * MS, T0 + 1000 * MS)
    assert not tracker.stable


def test_max_bounds_win_over_min_bounds() -> None:
    tracker = WarmupTracker(policy(min_iterations=100, max_iterations=30, window=5))
    assert run(tracker, np.full(100, MS)) == 30
    assert not tracker.stable


def test_records_after_the_end_change_nothing() -> None:
    tracker = WarmupTracker(policy(min_iterations=0, window=2))
    stop = run(tracker, np.full(10, MS))
    assert tracker.record(MS, T0 + 10**12)
    assert tracker.iterations == stop and tracker.stable and tracker.done


def test_single_iteration_limit_ends_on_the_cold_inference() -> None:
    tracker = WarmupTracker(policy(max_iterations=1))
    assert tracker.record(50 * MS, T0)
    assert tracker.first_ns == 50 * MS and not tracker.stable


def test_rejects_empty_window() -> None:
    with pytest.raises(ValueError):
        WarmupTracker(policy(window=0))
