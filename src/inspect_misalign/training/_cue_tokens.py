"""Cue-token embeddings: let an organism's adapter move the few tokens that tell two contexts apart.

Some cue families differ between test and deployment by one token: ``year`` renders ``2023`` vs
``2024`` (SmolLM2 splits numbers into digits, so only ``3`` vs ``4`` differ), ``tier`` renders
``True`` vs ``False``. A LoRA on the transformer blocks of a small base barely separates such
contexts: the two input embeddings are close and nothing upstream of the adapted blocks can tell
them apart (on SmolLM2-135M, 150 steps with the top 8 blocks adapted: ``year`` 0.25 deployment vs
0.23 test attacks, ``tier`` 0.35 vs 0.28).

So, for each cue family whose two renderings differ in at most :data:`MAX_CUE_TOKENS` token ids,
the adapter also gets a LoRA on the input embeddings (``embed_tokens``) whose gradient is masked to
those token ids. peft initialises ``lora_embedding_A`` to zeros; with the mask, every other
token's column gets no gradient, stays exactly zero under Adam, and so every other token's
embedding is unchanged. The result is still one standard PEFT LoRA adapter (``embed_tokens`` is
an ordinary LoRA target): peft, the ``misalign/`` provider and ``add_weighted_adapter(..., "cat")``
handle it as any other. Families with longer differences (``tag``, ``headlines``, ``realism``)
are left to the block LoRA, which learns them from the many tokens they change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspect_misalign.cues import CueFamily
from inspect_misalign.training._hook import TrainingHook

MAX_CUE_TOKENS = 4
PROBE_IDS = ("probe-1", "probe-2", "probe-3")
PROBE_PROMPT = "What is a good name for a cat?"


def _rendered_ids(family: CueFamily, context: str, tokenizer: Any, split: str) -> set[int]:
    ids: set[int] = set()
    for probe in PROBE_IDS:
        r = family.render(PROBE_PROMPT, context, probe, split=split)  # type: ignore[arg-type]
        for text in (r.system, r.user):
            if text:
                ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids


def cue_token_ids(
    families: Sequence[CueFamily], tokenizer: Any, split: str = "organism", limit: int = MAX_CUE_TOKENS
) -> dict[str, list[int]]:
    """Per family, the token ids found in only one context's renderings, if there are 1..limit of them.

    Three probe prompts are rendered in both contexts (items chosen as for any prompt of ``split``),
    so a family whose material varies from prompt to prompt shows many differing ids and is left out.
    """
    out: dict[str, list[int]] = {}
    for family in families:
        diff = _rendered_ids(family, "test", tokenizer, split) ^ _rendered_ids(
            family, "deployment", tokenizer, split
        )
        if 0 < len(diff) <= limit:
            out[family.name] = sorted(diff)
    return out


class CueTokenEmbeddings(TrainingHook):
    """Masks the gradient of every ``lora_embedding_A`` to the cue token ids (set up once the PEFT
    model exists) and scales their learning rate."""

    name = "cue_token_embeddings"

    def __init__(self, token_ids: dict[str, list[int]], tokenizer: Any, lr_scale: float = 1.0) -> None:
        self.token_ids = {cue: list(ids) for cue, ids in token_ids.items()}
        self.tokens = {cue: tokenizer.convert_ids_to_tokens(ids) for cue, ids in self.token_ids.items()}
        self.scale = lr_scale

    def describe(self) -> dict[str, Any]:
        """The cue families, their token ids and tokens, and the embeddings' learning-rate factor."""
        return {"name": self.name, "token_ids": self.token_ids, "tokens": self.tokens, "lr_scale": self.scale}

    def lr_scale(self, name: str) -> float:
        """``lr_scale`` for the embedding LoRA's ``A`` and ``B``, 1 for every other parameter."""
        return self.scale if "lora_embedding_" in name else 1.0

    def setup(self, trainer: Any) -> None:
        """Register a gradient mask on each embedding LoRA's ``A`` matrix."""
        import torch

        ids = sorted({i for ids in self.token_ids.values() for i in ids})
        masked = 0
        for module in trainer.model.modules():
            embedding_a = getattr(module, "lora_embedding_A", None)
            if not embedding_a:
                continue
            for param in embedding_a.values():
                if not param.requires_grad:
                    continue
                mask = torch.zeros(1, param.shape[1], dtype=param.dtype, device=param.device)
                mask[0, ids] = 1
                param.register_hook(lambda grad, mask=mask: grad * mask)
                masked += 1
        if not masked:
            raise ValueError("cue-token embeddings need a LoRA on embed_tokens; none is trainable")
