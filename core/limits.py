"""What a plan may ask of this host, checked when planning (the command line and the TUI alike),
so that a typo such as ``--copies 1000`` is a one-line refusal, not a thousand torch processes
taking the machine down.

The bounds are generous on purpose: they stop what cannot measure anything but contention or
cannot fit, not what is merely unusual. Each message says what was asked, what the host has,
and what would fit.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from .errors import UserError
from .host import usable_cpus

#: Workers one copy may have, and threads a configuration may start in one process.
MAX_WORKERS = 256
MAX_THREADS = 1024
#: Intra-op threads one copy may ask for (``run.threads_per_copy``).
MAX_INTRA_THREADS = 1024
#: Copies per usable CPU beyond which a run measures the scheduler, not the model.
COPIES_PER_CPU = 4
#: The largest batch size accepted (inputs are built for it on the host).
MAX_BATCH = 1 << 20
#: Configurations one plan may hold.
MAX_CONFIGS = 10_000
#: Memory a copy process takes before its model: Python, numpy and, for most models, torch.
PROCESS_MB_TORCH = 300.0
PROCESS_MB_PLAIN = 60.0


def process_mb(source: str) -> float:
    """What one copy process costs before its model's weights, by the kind of source."""
    return PROCESS_MB_PLAIN if source == "builtin:noop" else PROCESS_MB_TORCH


def available_mb() -> Optional[float]:
    try:
        import psutil

        return psutil.virtual_memory().available / 1e6
    except Exception:  # psutil is a dependency, but no check is worth a crash
        return None


def process_limit() -> Optional[int]:
    """The soft limit on this user's processes and threads (RLIMIT_NPROC), None if none."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    return None if soft in (resource.RLIM_INFINITY, -1) else int(soft)


def check_plan_limits(*, batch_sizes: Sequence[int], copies: Sequence[int],
                      workers: Sequence[int], copy_mode: str, source: str,
                      what: Tuple[str, str, str] = ("--batch-sizes", "--copies", "--workers"),
                      cpus: Optional[int] = None, memory_mb: Optional[float] = None,
                      nproc: Optional[int] = None, threads_per_copy: Optional[int] = None,
                      threads_what: str = "run.threads_per_copy") -> None:
    """Raise ``UserError`` for a sweep this host cannot run: naming the argument (or preset
    field) at fault, what it asked, and what fits. ``cpus``, ``memory_mb`` and ``nproc``
    default to this host's."""
    batch_what, copies_what, workers_what = what
    cpus = cpus or usable_cpus()
    configs = len(batch_sizes) * len(copies) * len(workers)
    if configs > MAX_CONFIGS:
        raise UserError(f"{batch_what}, {copies_what}, {workers_what}: {configs:,} configurations "
                        f"in one sweep (at most {MAX_CONFIGS:,}); sweep fewer values")
    biggest = max(batch_sizes)
    if biggest > MAX_BATCH:
        raise UserError(f"{batch_what}: batch size {biggest:,} is more than {MAX_BATCH:,}")
    most_workers = max(workers)
    if most_workers > MAX_WORKERS:
        raise UserError(f"{workers_what}: {most_workers:,} workers per copy is more than "
                        f"{MAX_WORKERS}")
    if threads_per_copy is not None and not 1 <= threads_per_copy <= MAX_INTRA_THREADS:
        raise UserError(f"{threads_what}: {threads_per_copy:,} threads per copy is not between "
                        f"1 and {MAX_INTRA_THREADS:,}")
    most_copies = max(copies)
    if most_copies > COPIES_PER_CPU * cpus:
        raise UserError(
            f"{copies_what}: {most_copies:,} copies on {cpus} usable CPU{'s' if cpus != 1 else ''} "
            f"would measure contention, not the model (at most {COPIES_PER_CPU * cpus})")
    threads = most_copies * most_workers if copy_mode == "thread" else most_workers
    if threads > MAX_THREADS:
        raise UserError(f"{copies_what} x {workers_what}: {threads:,} worker threads in one "
                        f"process (at most {MAX_THREADS:,})")
    nproc = nproc if nproc is not None else process_limit()
    tasks = most_copies * (most_workers + 4) if copy_mode == "process" else threads
    if nproc is not None and tasks > nproc // 2:
        raise UserError(f"{copies_what} x {workers_what}: about {tasks:,} processes and threads, "
                        f"more than half this user's limit of {nproc:,} (ulimit -u)")
    if copy_mode == "process":
        memory_mb = memory_mb if memory_mb is not None else available_mb()
        each = process_mb(source)
        if memory_mb is not None and most_copies * each > memory_mb:
            fit = max(1, math.floor(memory_mb / each))
            raise UserError(
                f"{copies_what}: {most_copies:,} copy processes need about "
                f"{most_copies * each / 1000:,.1f} GB before their model ({each:.0f} MB each), "
                f"and {memory_mb / 1000:,.1f} GB is available: at most {fit} fit")


def batch_bytes_fit(nbytes: int, what: str) -> None:
    """Refuse to build inputs that would take more than half the available memory: the
    configuration fails (out of memory) instead of the host swapping or killing processes."""
    memory_mb = available_mb()
    if memory_mb is not None and nbytes / 1e6 > memory_mb / 2:
        from .errors import ConfigurationError

        raise ConfigurationError(
            f"{what}: the inputs would take {nbytes / 1e9:,.2f} GB, more than half the "
            f"{memory_mb / 1000:,.1f} GB available", "out_of_memory")

