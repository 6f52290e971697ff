"""Prompt hidden states pooled per row: the mean over the prompt's tokens and the last token.

Both the generation path (the first ``generate`` step sees the whole prompt) and the scoring path
(one forward pass) hand over transformers' ``hidden_states`` tuple (entry 0 the embeddings, entry
``i`` the output of block ``i``) and, per row, the columns its prompt occupies in the padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from inspect_misalign._errors import MisalignError

Layers = tuple[int, ...] | str
"""Requested layers: indexes (0 = embeddings, negative from the end) or ``"all"``."""


def hidden_count(model_config: Any) -> int:
    """How many hidden states a forward pass returns: the embeddings plus one per block."""
    text = model_config
    if hasattr(model_config, "get_text_config"):
        text = model_config.get_text_config(decoder=True)
    return int(text.num_hidden_layers) + 1


def resolve_layers(layers: Layers, count: int, fix: str = 'extra_body={"hidden_layers": [...]}') -> list[int]:
    """Non-negative indexes for ``layers`` among ``count`` hidden states; a one-line error naming
    ``fix`` for an index out of range."""
    if layers == "all":
        return list(range(count))
    resolved = []
    for layer in layers:
        index = layer if layer >= 0 else count + layer
        if not 0 <= index < count:
            raise MisalignError(
                f"hidden layer {layer} is out of range: the model has {count} hidden states "
                f"(0 = embeddings, {count - 1} = last, negative counts from the end); fix {fix}"
            )
        resolved.append(index)
    return list(dict.fromkeys(resolved))


def pooled_states(
    hidden_states: Sequence[torch.Tensor], spans: Sequence[tuple[int, int, int]], layers: Sequence[int]
) -> list[dict[int, dict[str, list[float]]]]:
    """Per span ``(row, start, stop)`` (the prompt's columns ``start:stop`` in batch row ``row``):
    ``{layer: {"prompt_mean": [...], "prompt_last": [...]}}`` for each of ``layers``."""
    out: list[dict[int, dict[str, list[float]]]] = [{} for _ in spans]
    rows = torch.tensor([row for row, _, _ in spans], dtype=torch.long)
    last_cols = torch.tensor([stop - 1 for _, _, stop in spans], dtype=torch.long)
    for layer in layers:
        states = hidden_states[layer]
        width = states.shape[1]
        columns = torch.arange(width)[None, :]
        starts = torch.tensor([start for _, start, _ in spans])[:, None]
        stops = torch.tensor([stop for _, _, stop in spans])[:, None]
        mask = ((columns >= starts) & (columns < stops)).to(states.device, torch.float32)[:, :, None]
        picked = states[rows.to(states.device)].float()
        mean = ((picked * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).tolist()
        last = picked[torch.arange(len(spans), device=states.device), last_cols.to(states.device)].tolist()
        for index in range(len(spans)):
            out[index][layer] = {"prompt_mean": mean[index], "prompt_last": last[index]}
    return out


def by_layer_metadata(states: dict[int, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """The ``metadata["hidden_states_by_layer"]`` form: keys are layer indexes as strings."""
    return {str(layer): value for layer, value in sorted(states.items())}
