"""One arm of the continuous-batching engine comparison, run as its own process.

``python benchmarks/_engines.py ARM TOKENS OUT.json`` (ARM ``transformers:PAGE:BATCH_TOKENS`` tries
other cache sizes): load the default model the way the
``misalign/`` provider does (``get_base``: fp32, the transposed CPU head), then decode the bench
task's prompts (chat-templated, greedy, at most TOKENS new tokens, 32 at a time) with

- ``hand``: the provider's own continuous batching (``-M continuous=true``; all requests queued at
  once, lanes as the provider picks them: 2 one-thread lanes on a 2-core CPU);
- ``hand-1lane``: the same with ``-M lanes=1`` (one decode loop on all threads);
- ``transformers``: transformers' ``model.generate_batch`` (``ContinuousBatchingManager``, paged
  KV cache, ``sdpa_paged`` attention on CPU), at most 32 requests per step, a cache sized for 32
  requests of this length (left to itself on a CPU it sizes the cache from free RAM and ran
  6-7x slower here).

Only decoding is timed (from the first request to the last answer, weights already loaded); the
completions (decoded as the provider does), the wall seconds and the process's CPU seconds (all
its threads) go to OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_task import prompts  # noqa: E402

N_PROMPTS = 96
BATCH = 32
PAGE = 16
"""Tokens per page of transformers' paged cache (its default is 256; 16 was fastest here of 8-256)."""
BATCH_TOKENS = 512
"""Most tokens per forward pass in transformers' engine (prefill chunks + one per decoding row)."""


def _hand(tokens: int, lanes: str) -> tuple[float, float, list[str]]:
    from inspect_ai.model import ChatMessageUser, GenerateConfig

    from inspect_misalign.models._provider import MisalignAPI

    api = MisalignAPI("default", batch_size=BATCH, continuous=True, lanes=lanes)
    api._ensure_loaded().result()
    config = GenerateConfig(max_tokens=tokens)

    async def run() -> list[str]:
        calls = [api.generate([ChatMessageUser(content=p)], [], "none", config) for p in prompts(N_PROMPTS)]
        return [output.completion for output in await asyncio.gather(*calls)]

    start, cpu = time.monotonic(), time.process_time()
    texts = asyncio.run(run())
    return time.monotonic() - start, time.process_time() - cpu, texts


def _transformers(
    tokens: int, page: int = PAGE, batch_tokens: int = BATCH_TOKENS
) -> tuple[float, float, list[str]]:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    from inspect_misalign.models import local_checkpoint
    from inspect_misalign.models._loading import get_base

    base = get_base(local_checkpoint("default").base_dir)
    tokenizer = base.tokenizer
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts(N_PROMPTS)
    ]
    inputs = [tokenizer(chat, add_special_tokens=False)["input_ids"] for chat in chats]
    config = GenerationConfig(
        max_new_tokens=tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    longest = max(len(ids) for ids in inputs) + tokens
    batching = ContinuousBatchingConfig(
        page_size=page,
        num_blocks=BATCH * math.ceil(longest / page) + 8,
        max_batch_tokens=batch_tokens,
        max_requests_per_batch=BATCH,
        use_async_batching=False,
    )
    start, cpu = time.monotonic(), time.process_time()
    outputs = base.model.generate_batch(
        inputs, generation_config=config, continuous_batching_config=batching, warmup=False
    )
    seconds, cpu_seconds = time.monotonic() - start, time.process_time() - cpu
    ordered = [outputs[f"req_{index}"] for index in range(len(inputs))]
    texts = [
        tokenizer.decode(out.generated_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for out in ordered
    ]
    return seconds, cpu_seconds, texts


def main() -> None:
    arm, tokens, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if arm == "hand":
        seconds, cpu, texts = _hand(tokens, "auto")
    elif arm == "hand-1lane":
        seconds, cpu, texts = _hand(tokens, "1")
    elif arm.startswith("transformers"):  # transformers[:PAGE:BATCH_TOKENS]
        sizes = [int(part) for part in arm.split(":")[1:]]
        seconds, cpu, texts = _transformers(tokens, *sizes)
    else:
        raise SystemExit(f"unknown arm {arm!r}")
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "completions": texts}))


if __name__ == "__main__":
    main()
