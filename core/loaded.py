"""A model loaded on the host, with what is known about how to feed it: what every model source
produces and every backend receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .specs import InputSpec


@dataclass
class LoadedModel:
    """A model on the host, with what is known about how to feed it."""

    #: An nn.Module in eval mode, or a plain callable (``builtin:noop``).
    module: Callable[..., Any]
    source: str
    name: str
    parameters: Optional[int]
    #: Bytes of parameters and buffers / 1e6.
    size_mb: Optional[float]
    #: Inputs the source provides: a tuple (positional) or dict (keywords) of tensors of batch
    #: size 1 (repeated to any batch size), inputs already batched, or any object.
    example_inputs: Any = None
    #: How to synthesise inputs when neither the user nor ``example_inputs`` says.
    default_inputs: Optional[InputSpec] = None
    tokenizer: Any = None
    #: A function of the batch size that builds a batch, when the source provides one.
    make_inputs: Optional[Callable[[int], Any]] = None

    def describe(self) -> Dict[str, Any]:
        return {
            "source": self.source,
            "name": self.name,
            "parameters": self.parameters,
            "size_mb": self.size_mb,
        }


def loaded_module(
    module: Any,
    source: str,
    name: str,
    example_inputs: Any,
    default_inputs: Optional[InputSpec],
    tokenizer: Any = None,
) -> LoadedModel:
    """Put an nn.Module in eval mode and measure it."""
    module.eval()
    parameters = sum(p.numel() for p in module.parameters())
    size = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return LoadedModel(
        module=module,
        source=source,
        name=name,
        parameters=parameters,
        size_mb=size / 1e6,
        example_inputs=example_inputs,
        default_inputs=default_inputs,
        tokenizer=tokenizer,
    )
