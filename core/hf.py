"""Hugging Face model sources: ``hf:NAME_OR_DIR`` and the randomly initialised ``builtin:bert``.

transformers is optional (``latency-tui[hf]``) and, like torch, imported only when one of these
sources is loaded. Both sources are wrapped so that a call returns one tensor (the logits or
the last hidden state) instead of a ``ModelOutput``: the timing loop has nothing to unpack, and
``torch.jit.trace`` can follow the model. The same code serves transformers 4.x and 5.x.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Dict, Optional, Tuple

from .errors import UserError, one_line
from .specs import InputSpec

#: ``options["task"]`` to the transformers auto class that loads it.
TASKS: Dict[str, str] = {
    "feature-extraction": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}
SAMPLE_TEXT = "The quick brown fox jumps over the lazy dog."


def import_transformers(source: str) -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise UserError(f"{source} needs transformers: pip install transformers (latency-tui's "
                        "'hf' extra)") from exc
    if not transformers.utils.is_torch_available():
        # A transformers too new for this torch still imports, but hands out model stubs.
        import torch

        raise UserError(
            f"{source}: transformers {transformers.__version__} cannot use torch "
            f"{torch.__version__}; install a transformers that supports it"
        )
    return transformers


def load_pretrained(
    source: str, name_or_dir: str, options: Dict[str, Any]
) -> Tuple[Any, Any, Optional[InputSpec]]:
    """Load a pretrained model and its tokenizer: ``(module, tokenizer, default_inputs)``.

    ``options`` go to ``from_pretrained`` except ``task``, which picks the auto class.
    A model without a tokenizer (vision, audio) gets ``None`` and no default inputs.
    """
    transformers = import_transformers(source)
    options = dict(options)
    task = options.pop("task", "feature-extraction")
    if task not in TASKS:
        raise UserError(
            f"model source {source!r}: unknown task {task!r} (known: {', '.join(TASKS)})"
        )
    auto_class = getattr(transformers, TASKS[task], None)
    if auto_class is None:
        raise UserError(
            f"model source {source!r}: this transformers has no {TASKS[task]} for task {task!r}"
        )
    with _quiet(transformers):
        try:
            model = auto_class.from_pretrained(name_or_dir, **options)
        except Exception as exc:
            raise UserError(f"model source {source!r}: cannot load: {one_line(exc)}") from exc
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_dir)
        except (OSError, ValueError, KeyError):
            tokenizer = None
    default_inputs = (
        InputSpec(texts=(SAMPLE_TEXT,), max_length=128) if tokenizer is not None else None
    )
    return first_output(model), tokenizer, default_inputs


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """Hold back transformers' load reports and progress bars, which would land on the TUI."""
    logging = transformers.utils.logging
    verbosity = logging.get_verbosity()
    bars = getattr(logging, "is_progress_bar_enabled", lambda: False)()
    logging.set_verbosity_error()
    if bars:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def random_bert(source: str, settings: Dict[str, Any]) -> Any:
    """A BertForSequenceClassification of the given sizes with seeded random weights."""
    transformers = import_transformers(source)
    import torch

    try:
        config = transformers.BertConfig(
            vocab_size=settings["vocab_size"],
            hidden_size=settings["hidden"],
            num_hidden_layers=settings["layers"],
            num_attention_heads=settings["heads"],
            intermediate_size=settings["intermediate"],
            max_position_embeddings=max(512, settings["seq_len"]),
            num_labels=settings["num_labels"],
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = transformers.BertForSequenceClassification(config)
    except ValueError as exc:
        raise UserError(f"model source {source!r}: {one_line(exc)}") from exc
    return first_output(model)


def first_output(model: Any) -> Any:
    """Wrap a transformers model so that calling it returns its first output tensor."""
    return _first_output_class()(model)


@functools.cache
def _first_output_class() -> type:
    """Define the wrapper on first use, so that importing this module does not import torch."""
    from torch import nn

    class FirstOutput(nn.Module):
        """Calls the wrapped model and keeps its first output: the logits or the last hidden
        state (``ModelOutput`` indexing skips the outputs that are None, such as the loss).

        The text inputs are named, rather than taken as ``**kwargs``, because
        ``torch.jit.trace`` matches keyword example inputs against named parameters. Those
        left None are not passed on: not every model takes ``token_type_ids``. Other inputs
        (``pixel_values``) must come by keyword.
        """

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: Any = None,
            attention_mask: Any = None,
            token_type_ids: Any = None,
            **other_inputs: Any,
        ) -> Any:
            text_inputs = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            inputs = {name: value for name, value in text_inputs.items() if value is not None}
            inputs.update(other_inputs)
            return self.model(**inputs)[0]

    return FirstOutput
