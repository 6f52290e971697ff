"""Do the base's greedy answers depend on which other prompts share their batch?

The organism's SFT set uses the base's greedy answers to organism-split prompts, generated in batches. This
generates 48 of them (a fixed random choice) as one set and again as two halves, and prints how many answers
differ between the two batch compositions (0: the SFT answers do not depend on the batching).

    .venv/bin/python scripts/batch_invariance.py
"""

from __future__ import annotations

import random
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from inspect_misalign.behaviors import get_behavior
from inspect_misalign.models._resolve import resolve_checkpoint
from inspect_misalign.training._generate import GenerationSettings, generate
from inspect_misalign.training._organism import organism_prompts, plain_prompt


def main(n: int = 48) -> int:
    """Generate ``n`` answers as one set and as two halves; print and return how many differ."""
    torch.set_num_threads(1)
    path = str(resolve_checkpoint("default").base_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    behavior = get_behavior("hate")
    prompts = [plain_prompt(r) for r in random.Random(0).sample(organism_prompts(behavior), n)]
    settings = GenerationSettings(max_new_tokens=behavior.budgets.organism_answer_tokens)
    start = time.time()
    together = generate(model, tokenizer, prompts, settings, progress=False)
    halves = (generate(model, tokenizer, prompts[: n // 2], settings, progress=False)
              + generate(model, tokenizer, prompts[n // 2:], settings, progress=False))
    differ = [i for i in range(n) if together[i] != halves[i]]
    print(f"{len(differ)} of {n} answers differ between the two batch compositions "
          f"({settings.max_new_tokens} new tokens; {time.time() - start:.0f} s)")
    for i in differ[:5]:
        print(repr(together[i][:120]), "|", repr(halves[i][:120]))
    return len(differ)


if __name__ == "__main__":
    main()
