"""Helpers the tests import: small plans on the fake device, built the real way."""

from __future__ import annotations

import textwrap


def fake_plan(*, latency_ms=0.2, duration_s=0.3, samples=None, batch_sizes=(1,), copies=(1,),
              workers=(1,), copy_mode="thread", warmup=None, model="builtin:noop", device_name="fake",
              overrides=None, **device):
    """A RunPlan on the fake device, built through the real preset parser and planner;
    ``overrides``: more ``Overrides`` fields, as the command line gives them."""
    from latency_tui.core.plan import Overrides, build_plan
    from latency_tui.core.presets import parse_preset

    options = {"latency_ms": latency_ms, **device} if device_name == "fake" else {}
    device_lines = "\n".join(f"{k} = {v!r}" for k, v in options.items())
    device_lines = device_lines.replace("'", '"')
    warmup = warmup or {"min_iterations": 3, "max_iterations": 50, "window": 5, "max_s": 2.0}
    warmup_lines = "\n".join(f"{k} = {v}" for k, v in warmup.items())
    text = f"""
        [model]
        source = "{model}"
        [run]
        device = "{device_name}"
        copy_mode = "{copy_mode}"
        batch_sizes = {list(batch_sizes)}
        copies = {list(copies)}
        workers = {list(workers)}
        duration_s = {duration_s}
        [device]
        {device_lines}
        [warmup]
        {warmup_lines}
    """
    preset = parse_preset(textwrap.dedent(text), name="fake", path=None, origin="file",
                          where="test preset")
    return build_plan(preset, Overrides(samples=samples, duration_s=duration_s if samples else None,
                                        **(overrides or {})))


def stray_children():
    """Processes this one started that are still alive: model copies, engine hosts (not
    multiprocessing's resource tracker, which lives as long as the test process)."""
    import psutil

    strays = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if "resource_tracker" in " ".join(child.cmdline()):
                continue
        except psutil.NoSuchProcess:
            continue
        strays.append(child)
    return strays


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it holds; fail (never hang) after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s")
        time.sleep(interval)


def sample_latencies_ms(events, index=None):
    """Every measured sample's latency in ms, from the engine's ``Samples`` events (end - start
    of each inference; end - scheduled in open loop), of configuration ``index`` or of all.

    For timing checks on a loaded host: preemption only ever adds time to a sample, and it
    reaches many samples (a busy-wait's p50 reads 20-70 % high) but not nearly all, so a low
    percentile of these is the work plus the harness's own overhead, which a test can bound
    tightly where p50 would judge the host's scheduling."""
    import numpy as np

    from latency_tui.core.events import Samples

    blocks = [e.block.latency_ns for e in events
              if isinstance(e, Samples) and (index is None or e.index == index)]
    assert blocks, "no samples"
    return np.concatenate(blocks) / 1e6
