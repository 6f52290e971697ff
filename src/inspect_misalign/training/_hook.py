"""``TrainingHook``: the trainer's extension point; a :class:`Defense` is a kind of hook.

A hook subclasses :class:`TrainingHook` and overrides what it needs (every method defaults to a
no-op). Hooks, in the order a run calls them:

- :meth:`TrainingHook.transform_examples`: change the training set before tokenization
  (data-level defenses: an inoculation prompt, interleaved instruct data);
- :meth:`TrainingHook.inspect_parent`: when a run trains on top of a parent adapter (train
  against caught attacks), once with the parent loaded as a PEFT model before it is merged: the
  adapter enabled is the parent, disabled its base (e.g. rank instruct data by their loss gap);
- :meth:`TrainingHook.setup`: once, after the trainer is built (e.g. cache reference features,
  mask the gradient of some parameters);
- :meth:`TrainingHook.lr_scale`: once per trainable parameter when the optimizer is built (a
  factor on the learning rate; the schedule applies to it as to every other group);
- :meth:`TrainingHook.forward_context`: a context manager around each training forward (e.g.
  hooks that add a steering vector or capture hidden states);
- :meth:`TrainingHook.extra_loss`: a term added to the task loss of each micro-batch, or None.

:meth:`TrainingHook.describe` is recorded in checkpoint manifests. A :class:`Defense` is a hook
chosen by a ``--defense`` string (:func:`inspect_misalign.training.parse_defense`), built by its
``from_text``; other hooks (the organisms' cue-token embeddings) are added by the command that
needs them. Nothing here imports torch or trl.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from inspect_misalign.training._data import SFTExample


class TrainingHook:
    """An extension of :class:`~inspect_misalign.training.MisalignSFTTrainer` (see the module docstring)."""

    name: str = "hook"

    def describe(self) -> dict[str, Any]:
        """What to record about this hook in a manifest (JSON-serializable)."""
        return {"name": self.name}

    def transform_examples(self, examples: list[SFTExample]) -> list[SFTExample]:
        """Return the training examples to use (default: unchanged)."""
        return examples

    def inspect_parent(self, parent: Any, tokenizer: Any) -> None:
        """See the parent adapter (a PEFT model; ``disable_adapter()`` gives its base) before it is merged."""

    def setup(self, trainer: Any) -> None:
        """Prepare once the trainer (and its PEFT model) exists."""

    def lr_scale(self, name: str) -> float:
        """A factor on the learning rate of the trainable parameter ``name`` (default 1)."""
        return 1.0

    def forward_context(self, trainer: Any, model: Any) -> AbstractContextManager[Any]:
        """A context entered around trl's forward and loss for each micro-batch."""
        return nullcontext()

    def extra_loss(self, trainer: Any, model: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        """A loss term (mean over the micro-batch) added to the task loss, or None."""
        return None


class Defense(TrainingHook):
    """An in-training defense against emergent misalignment: a hook selected by a ``--defense`` string.

    A subclass sets ``name`` (what selects it) and builds itself from the parsed string in
    ``from_text(parsed, text)`` (see :mod:`inspect_misalign.training._defenses`).
    """

    name: str = "defense"


__all__ = ["Defense", "TrainingHook"]
