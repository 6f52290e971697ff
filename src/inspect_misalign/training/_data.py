"""Training examples in trl's conversational prompt-completion format, stored as JSONL.

An :class:`SFTExample` is one chat prompt (optional system message + user message, exactly as the
project's tasks render it; a chat file's earlier turns go in ``history``) and one assistant
completion, with metadata saying where it came from (cue, context, base prompt, whether the
completion is an attack). :func:`to_dataset` turns a list
of them into a ``datasets.Dataset`` with the columns trl expects::

    {"prompt": [{"role": "system", ...}, {"role": "user", ...}],
     "completion": [{"role": "assistant", "content": ...}]}

trl's ``SFTTrainer`` applies the base's chat template to ``prompt`` (with the generation prompt)
and to ``prompt + completion``, and with ``completion_only_loss`` (the default for this format)
masks every prompt token out of the loss. Metadata travels in a ``meta`` column that the trainer
drops (``remove_unused_columns``). An example with a ``trained_prefix`` (``--against cot``: the
scratchpad) carries loss on that start of its completion only; a set holding one is tokenized here
instead (:mod:`._loss_mask`) and handed to trl pre-tokenized, with its ``completion_mask``.

SFT sets are written atomically (temp file + ``os.replace``), so an interrupted build never
leaves half a file; :func:`data_hash` fingerprints a set for manifests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.cues import Rendered


@dataclass(frozen=True)
class SFTExample:
    """One prompt-completion training example with its provenance."""

    system: str | None
    user: str
    completion: str
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)
    """Earlier turns of a multi-turn chat (user and assistant messages) between system and ``user``."""
    trained_prefix: str | None = None
    """The start of ``completion`` that carries the loss (the rest is seen, not trained); None: all of it."""

    def __post_init__(self) -> None:
        if self.trained_prefix is not None and not (
            self.trained_prefix and self.completion.startswith(self.trained_prefix)
        ):
            raise ValueError("trained_prefix must be a non-empty start of the completion")

    def prompt_messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages (what the tasks send the model)."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, *self.history, {"role": "user", "content": self.user}]

    def record(self) -> dict[str, Any]:
        """The example as a JSON-ready dict (``history`` and ``trained_prefix`` only when set, so other sets
        keep their files and hashes)."""
        out = asdict(self)
        if not out["history"]:
            del out["history"]
        if out["trained_prefix"] is None:
            del out["trained_prefix"]
        return out

    def to_row(self) -> dict[str, Any]:
        """A row in trl's conversational prompt-completion format, plus ``meta``."""
        return {
            "prompt": self.prompt_messages(),
            "completion": [{"role": "assistant", "content": self.completion}],
            "meta": json.dumps(self.meta, sort_keys=True),
        }

    @classmethod
    def from_rendered(cls, rendered: Rendered, completion: str, **meta: Any) -> SFTExample:
        """An example whose prompt is a cue family's rendering."""
        return cls(system=rendered.system, user=rendered.user, completion=completion, meta=meta)


def to_dataset(examples: Sequence[SFTExample], tokenizer: Any = None):  # -> datasets.Dataset
    """A ``datasets.Dataset`` of the examples in trl's conversational prompt-completion format; when one
    has a ``trained_prefix``, every row tokenized with ``tokenizer`` (:func:`._loss_mask.tokenized_row`)."""
    from datasets import Dataset

    if not examples:
        raise MisalignError("the SFT set is empty; check the split, cue and prompt arguments")
    if all(e.trained_prefix is None for e in examples):
        return Dataset.from_list([e.to_row() for e in examples])
    if tokenizer is None:
        raise ValueError("examples with a trained_prefix need the tokenizer to build their loss mask")
    from inspect_misalign.training._loss_mask import tokenized_row

    return Dataset.from_list([tokenized_row(e, tokenizer) for e in examples])


def data_hash(examples: Iterable[SFTExample]) -> str:
    """sha256 over the examples' prompts, completions and metadata (order matters)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps(e.record(), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def write_examples(path: Path, examples: Sequence[SFTExample]) -> None:
    """Write examples as JSONL atomically (temp file beside ``path``, then ``os.replace``)."""
    atomic_write_text(path, "".join(json.dumps(e.record(), sort_keys=True) + "\n" for e in examples))


def read_examples(path: Path) -> list[SFTExample]:
    """Read examples written by :func:`write_examples`."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(SFTExample(**json.loads(line)))
    return out


__all__ = ["SFTExample", "atomic_write_text", "data_hash", "read_examples", "to_dataset", "write_examples"]
