"""A workload whose tail is known exactly: every n-th call is a spike (10 ms, or 100 ms), the
others take 1 ms. Where the spikes sit in the distribution follows from n, so p99 and its
confidence interval must land on the spike or below it accordingly (through the real engine on
the handler-driven fake)."""

from __future__ import annotations

import pytest
from helpers import fake_plan

from latency_tui.core.backends.fake import FakeBackend
from latency_tui.core.engine import Engine

BASE_MS, SPIKE_MS = 1.0, 10.0


def spiking_every(n, spike_ms=SPIKE_MS):
    def handler(batch, copy, worker, i):
        return spike_ms if i % n == n - 1 else BASE_MS

    return handler


def measure(n, spike_ms=SPIKE_MS):
    plan = fake_plan(duration_s=2.5, mode="sleep",
                     warmup={"min_iterations": 5, "max_iterations": 200, "window": 20,
                             "max_s": 1.0})
    (result,) = Engine(plan, lambda event: None, backend_factory=lambda config: FakeBackend(
        config.device_options, handler=spiking_every(n, spike_ms))).run()
    assert result.status == "finished", result.error
    return result


@pytest.mark.slow
def test_spikes_on_two_percent_of_calls_are_the_p99_and_its_interval():
    result = measure(50)  # 2 % of calls: p98 and up are spikes
    latency = result.latency
    assert latency["p95"] < SPIKE_MS / 2
    low, high = latency.intervals["p99"]
    assert SPIKE_MS * 0.95 <= low <= latency["p99"] <= high <= SPIKE_MS * 1.3
    assert latency.max >= SPIKE_MS


@pytest.mark.slow
def test_spikes_on_a_quarter_percent_of_calls_stay_out_of_p99_but_not_out_of_the_max():
    spike_ms = 100.0
    result = measure(400, spike_ms)  # 0.25 % of calls: p99 is a 1 ms call, p99.9 a spike
    latency = result.latency
    low, high = latency.intervals["p99"]
    # Well below a spike. With ~1,900 samples p99's upper bound is about the 10th slowest, twice
    # the ~5 spikes above it. The bound is half a spike, 50 ms: a 1 ms sleep the host stalls
    # reads 5 ms on a loaded machine, 12 ms under the harshest load tried, so the bound judges
    # where the spikes fall, not the host; one spike counted into p99 or its interval is 100 ms.
    assert low <= latency["p99"] <= high < spike_ms / 2
    assert latency.max >= spike_ms * 0.95
