"""Checks of a measurement against itself, as pure functions: warnings a result carries.

The synchronisation self-check compares, per configuration, the host clock's latency with the
device's own (CUDA events): the host time must include the device time, so a host median far
below the device's means something returned before the work finished (a missing synchronise),
and one far above it means launch and Python overhead dominate what is measured.
"""

from __future__ import annotations

from typing import List, Optional

from .measurement import LatencySummary

#: Host median under this fraction of the device median: the host did not wait.
HOST_BELOW_DEVICE = 0.9
#: Host median over this multiple of the device median (and ``OVERHEAD_FLOOR_MS`` more): the
#: work is launch-bound.
HOST_ABOVE_DEVICE = 2.0
OVERHEAD_FLOOR_MS = 0.05


def sync_check(host: Optional[LatencySummary], device: Optional[LatencySummary]) -> List[str]:
    """Warnings from comparing host-clock and device-clock latency medians."""
    if host is None or device is None or device["p50"] <= 0:
        return []
    host_ms, device_ms = host["p50"], device["p50"]
    if host_ms < HOST_BELOW_DEVICE * device_ms:
        return [f"host time (p50 {host_ms:.4g} ms) is below the device's own "
                f"({device_ms:.4g} ms): something returned before the work finished; the "
                "device time is the one to trust"]
    if host_ms > HOST_ABOVE_DEVICE * device_ms and host_ms - device_ms > OVERHEAD_FLOOR_MS:
        return [f"host time (p50 {host_ms:.4g} ms) is {host_ms / device_ms:.1f}x the device's "
                f"({device_ms:.4g} ms): launch and Python overhead dominate; try CUDA graphs "
                "(device option compile = \"graph\") or a larger batch"]
    return []
