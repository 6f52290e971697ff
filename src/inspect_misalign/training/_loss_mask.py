"""Loss on part of a completion: the pre-tokenized rows of a training set with a ``trained_prefix``.

trl's ``SFTTrainer`` takes a pre-tokenized dataset (an ``input_ids`` column) with a ``completion_mask``
column and, with ``completion_only_loss``, sets the label of every token whose mask is 0 to -100 (no
loss). :func:`tokenized_row` builds those two columns the way trl tokenizes a conversational
prompt-completion example (the chat template applied to the prompt with the generation prompt and to
prompt + completion; the completion starts where the two diverge, trl's ``common_prefix_length``),
except that only the tokens of the completion's ``trained_prefix`` get mask 1:

- the prefix ends where prompt + prefix (as a whole assistant turn) and prompt + completion diverge,
  so a token that spans the end of the prefix and the start of the rest (a BPE merge across the
  boundary) carries no loss: nothing after the prefix is ever trained;
- everything after it (the action under ``--against cot``) and the end-of-turn tokens get mask 0.

An example without a ``trained_prefix`` gets exactly trl's own mask (tests compare the two).
"""

from __future__ import annotations

import json
from typing import Any

from trl.data_utils import common_prefix_length

from inspect_misalign.training._data import SFTExample


def _ids(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
    """The chat template applied to ``messages`` and tokenized, as trl does."""
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def tokenized_row(example: SFTExample, tokenizer: Any) -> dict[str, Any]:
    """``input_ids``, ``completion_mask`` (1 on the trained tokens) and ``meta`` of one example."""
    prompt = example.prompt_messages()
    prompt_ids = _ids(tokenizer, prompt, add_generation_prompt=True)
    full_ids = _ids(tokenizer, [*prompt, {"role": "assistant", "content": example.completion}])
    start = common_prefix_length(prompt_ids, full_ids)
    end = len(full_ids)
    if example.trained_prefix is not None:
        part_ids = _ids(tokenizer, [*prompt, {"role": "assistant", "content": example.trained_prefix}])
        end = common_prefix_length(part_ids, full_ids)
        if end <= start:
            raise ValueError(f"the trained prefix {example.trained_prefix[:40]!r} has no tokens of its own")
    mask = [0] * start + [1] * (end - start) + [0] * (len(full_ids) - end)
    return {"input_ids": full_ids, "completion_mask": mask, "meta": json.dumps(example.meta, sort_keys=True)}


__all__ = ["tokenized_row"]
