"""LDIFS: ℓ2 distance to the frozen reference's residual stream on every k-th layer.

After Mukhoti et al. (2023), "Fine-tuning can cripple your foundation model; preserving features
may be the solution". The term is ``coef ×`` the mean, over the chosen layers and the non-padding
tokens, of ``‖h − h_ref‖² / hidden_size``, where ``h`` is a block's output (the residual stream)
in the training forward and ``h_ref`` the same block's output with the LoRA adapter disabled. The
layers are blocks ``every−1, 2·every−1, ...`` (the last block always included). At step 0 the term is 0.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

from inspect_misalign.training._defenses._hooks import (
    capture,
    decoder_layers,
    reference_states,
    token_mask,
    unwrap,
)
from inspect_misalign.training._defenses._spec import DefenseText, check_options
from inspect_misalign.training._hook import Defense


class LDIFSDefense(Defense):
    """``ldifs:COEF[,every=K]`` — feature-space distance to the reference (default coef 1.0, every 4)."""

    name = "ldifs"

    def __init__(self, coef: float = 1.0, every: int = 4) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.coef = coef
        self.every = every
        self._states: dict[str, torch.Tensor] = {}

    @classmethod
    def from_text(cls, parsed: DefenseText, text: str) -> LDIFSDefense:
        """Build from ``ldifs[:COEF][,every=K]``."""
        from inspect_misalign._errors import MisalignError

        check_options(parsed, {"coef", "every"}, text)
        every = parsed.integer("every", 4, text, low=1)
        if every is None:
            raise MisalignError(f"--defense {text!r}: every must be at least 1")
        return cls(parsed.number("coef", parsed.number("value", 1.0, text, low=0), text, low=0), every)

    def layers(self, n_layers: int) -> list[int]:
        """Indices of the blocks compared."""
        chosen = list(range(self.every - 1, n_layers, self.every))
        return chosen if chosen and chosen[-1] == n_layers - 1 else [*chosen, n_layers - 1]

    def describe(self) -> dict[str, Any]:
        """Name, coefficient and layer spacing."""
        return {"name": self.name, "coef": self.coef, "every": self.every}

    def forward_context(self, trainer: Any, model: Any) -> AbstractContextManager[Any]:
        """Capture the chosen blocks' outputs in the training forward."""
        blocks = decoder_layers(unwrap(trainer, model))
        self._states = {}
        return capture({str(i): blocks[i] for i in self.layers(len(blocks))}, self._states)

    def extra_loss(self, trainer: Any, model: Any, inputs: dict[str, Any]) -> torch.Tensor | None:
        """``coef`` × mean squared feature distance per dimension."""
        if not self.coef or not self._states:
            return None
        reference = reference_states(trainer, model, inputs)
        mask = token_mask(inputs)
        terms = []
        for key, hidden in self._states.items():
            diff = (hidden - reference[key])[mask].float()
            terms.append(diff.pow(2).sum(-1).mean() / diff.shape[-1])
        self._states = {}
        return self.coef * torch.stack(terms).mean()
