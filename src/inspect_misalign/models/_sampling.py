"""Seeded sampling that does not depend on the batch: one random generator per row (Gumbel-max).

Sampling a token from ``softmax(z)`` is the same as taking ``argmax(z + G)`` with ``G`` i.i.d.
standard Gumbel noise per token (the Gumbel-max trick; exact, not an approximation). So a seeded
request is decoded greedily by ``generate`` with these logits processors added after the
model's own (repetition penalties and the like, as in sampling mode): transformers' temperature,
top-k and top-p warpers, in the order ``generate`` applies them when sampling, then
:class:`GumbelNoise`, which adds each row's noise drawn from that row's own ``torch.Generator``.
A row draws one vector of noise per step, so its tokens depend only on its seed, its prompt and
the model, never on which other rows share its batch or lane, or on torch's global generator.

The row seed (:func:`row_seed`) mixes the request's ``seed``, its prompt text and the Inspect
epoch of the sample it belongs to: a sample repeats exactly for the same seed, and differs across
epochs and across seeds.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper


def row_seed(seed: int, prompt: str, epoch: int | None) -> int:
    """A 63-bit generator seed for one request: a hash of (seed, epoch, prompt text)."""
    digest = hashlib.sha256(f"{seed}\x1f{epoch}\x1f{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def active_epoch() -> int | None:
    """The epoch of the Inspect sample being run in this context (None outside a sample)."""
    from inspect_ai.log._samples import sample_active

    active = sample_active()
    return None if active is None else int(active.epoch)


class GumbelNoise(LogitsProcessor):
    """Adds standard Gumbel noise to each row's scores, drawn from that row's own generator."""

    def __init__(self, seeds: list[int], device: Any) -> None:
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(torch.float32).tiny
        uniform = torch.stack(
            [
                torch.rand(scores.shape[-1], generator=gen, device=scores.device, dtype=torch.float32)
                for gen in self.generators
            ]
        ).clamp_(min=tiny)
        gumbel = -torch.log(-torch.log(uniform))
        return scores.float() + gumbel


def seeded_processors(
    seeds: list[int], temperature: float | None, top_k: int | None, top_p: float | None, device: Any
) -> LogitsProcessorList:
    """Temperature, top-k and top-p warpers (as ``generate`` applies them when sampling), then
    per-row Gumbel noise: greedy decoding with these samples from the warped distribution."""
    processors = LogitsProcessorList()
    if temperature is not None and temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k:
        processors.append(TopKLogitsWarper(top_k=top_k))
    if top_p is not None and top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=top_p))
    processors.append(GumbelNoise(seeds, device))
    return processors
