"""KL to the frozen reference: ``coef × KL(p_θ ‖ p_ref)`` on the completion tokens.

``p_ref`` is the model being trained with its LoRA adapter disabled (peft's ``disable_adapter()``),
so no second copy of the model is held. The training forward's final hidden states are captured by
a hook (trl's fused LM head never builds the full logits) and projected through the LM head only at
the completion positions; the reference's come from :func:`reference_states`. The term is the mean
over completion tokens of the per-token KL divergence. At step 0 the new adapter is zero, so the term
is exactly 0.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

from inspect_misalign.training._defenses._hooks import (
    FINAL,
    capture,
    completion_mask,
    final_norm,
    lm_head,
    reference_states,
    unwrap,
)
from inspect_misalign.training._defenses._spec import DefenseText, check_options
from inspect_misalign.training._hook import Defense


class KLDefense(Defense):
    """``kl:COEF`` — KL divergence of the trained model from the frozen reference (default coef 0.1)."""

    name = "kl"

    def __init__(self, coef: float = 0.1) -> None:
        self.coef = coef
        self._states: dict[str, torch.Tensor] = {}

    @classmethod
    def from_text(cls, parsed: DefenseText, text: str) -> KLDefense:
        """Build from ``kl[:COEF]``."""
        check_options(parsed, {"coef"}, text)
        coef = parsed.number("coef", parsed.number("value", 0.1, text, low=0), text, low=0)
        return cls(coef)

    def describe(self) -> dict[str, Any]:
        """Name and coefficient."""
        return {"name": self.name, "coef": self.coef, "direction": "KL(p_model || p_reference)"}

    def forward_context(self, trainer: Any, model: Any) -> AbstractContextManager[Any]:
        """Capture the final hidden states of the training forward."""
        self._states = {}
        return capture({FINAL: final_norm(unwrap(trainer, model))}, self._states)

    def extra_loss(self, trainer: Any, model: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        """``coef`` × mean per-token KL(p_model ‖ p_reference) over the completion tokens."""
        if not self.coef or FINAL not in self._states:
            return None
        mask = completion_mask(inputs)
        hidden = self._states.pop(FINAL)[mask]
        ref_hidden = reference_states(trainer, model, inputs)[FINAL][mask]
        if hidden.shape[0] == 0:
            return hidden.sum() * 0.0
        head = lm_head(unwrap(trainer, model))
        logp = torch.log_softmax(head(hidden).float(), dim=-1)
        with torch.no_grad():
            ref_logp = torch.log_softmax(head(ref_hidden).float(), dim=-1)
        kl = (logp.exp() * (logp - ref_logp)).sum(-1).mean()
        return self.coef * kl
