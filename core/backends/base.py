"""The device-backend interface: the one seam between the engine and a device.

Shaped like httpx's ``BaseTransport``: one small abstract base with a few methods, real
implementations beside it (CPU now; CUDA and Neuron later) and a fake one the tests drive.

A backend turns a model loaded on the host into a ``PreparedModel`` for one batch size and
one copy: it moves (or compiles) the model onto the device, places the example inputs there
once, and hands back a ready-to-call ``infer``. The timing loop then calls, per sample::

    t0 = perf_counter_ns(); prepared.infer(); prepared.wait(); t1 = perf_counter_ns()

so ``infer`` must do the inference and nothing else (no host-to-device copy, no allocation
the backend could have done in ``prepare``), and ``wait`` must block until the device has
really finished (a CUDA synchronize, a no-op on the CPU). A backend that cannot wait for
completion says so in ``DeviceFacts.timing`` rather than reporting launch times as latency.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, Optional


@dataclass(frozen=True)
class DeviceFacts:
    """What a backend knows about its device, recorded in the session."""

    device: str
    name: str
    #: How latency is timed: "host clock, synchronous" (CPU), "host clock after synchronize"...
    timing: str
    details: Dict[str, Any] = field(default_factory=dict, hash=False)


class PreparedModel(ABC):
    """A model on its device with its inputs placed: one call of ``infer`` is one inference."""

    #: True when ``infer`` returns only once the work is done, so ``wait`` need not be called.
    synchronous: bool = True

    @abstractmethod
    def infer(self) -> Any:
        """Run one inference on the placed inputs; may return before the device finishes."""

    def wait(self) -> None:
        """Block until every inference issued so far has finished on the device."""

    def infer_on(self, inputs: Any) -> Any:
        """Run one inference on other inputs (already placed), for a preprocess pipeline."""
        raise NotImplementedError(f"{type(self).__name__} cannot run on other inputs")

    def place(self, host_inputs: Any) -> Any:
        """Move host inputs to the device (used by the pipeline path, never in ``infer``)."""
        return host_inputs

    def thread_context(self) -> ContextManager[Any]:
        """A context each worker thread enters once around its loop (``torch.inference_mode``)."""
        return contextlib.nullcontext()

    def close(self) -> None:
        """Release device resources."""


class Backend(ABC):
    """A kind of device. One instance serves every copy of a configuration in its process."""

    #: The ``device`` name a preset or ``--device`` uses.
    name: str = ""

    def __init__(self, options: Optional[Dict[str, Any]] = None) -> None:
        self.options: Dict[str, Any] = dict(options or {})

    def check_available(self) -> None:
        """Raise ``UserError`` saying why this device cannot be used on this host."""

    @abstractmethod
    def facts(self) -> DeviceFacts:
        """Describe the device (cheap; called once per configuration)."""

    @abstractmethod
    def prepare(
        self,
        model: Callable[..., Any],
        inputs: Any,
        *,
        batch_size: int,
        copy_index: int,
        threads: Optional[int],
    ) -> PreparedModel:
        """Put ``model`` on the device for ``batch_size`` and place ``inputs`` there once.

        ``inputs`` is a tuple of positional tensors or a dict of keyword tensors, already
        batched. ``threads`` is the intra-op thread count this copy may use (None: the
        backend's default).
        """

    def configure_process(self, copy_index: int, threads: Optional[int]) -> None:
        """Set process-wide state in a copy's own process before the model loads
        (intra-op threads; NeuronCore visibility for Neuron)."""
