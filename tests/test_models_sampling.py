"""Seeded sampling: one generator per row, seeded by (seed, prompt, epoch); exact in distribution."""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai.model import ChatMessageUser, GenerateConfig, ModelOutput
from tiny import PROMPTS

from inspect_misalign.models._provider import MisalignAPI
from inspect_misalign.models._sampling import row_seed

pytestmark = pytest.mark.usefixtures("misalign_home")

FILLER = ["adapters change the outputs", "paris", "hello world, this is a tiny tokenizer"]


async def _gather(calls: list[tuple[MisalignAPI, str, GenerateConfig]]) -> list[ModelOutput]:
    return await asyncio.gather(
        *(api.generate([ChatMessageUser(content=prompt)], [], "none", cfg) for api, prompt, cfg in calls)
    )


def _sample(api: MisalignAPI, prompts: list[str], **config: Any) -> list[str]:
    cfg = GenerateConfig(max_tokens=config.pop("max_tokens", 8), **config)
    return [o.completion for o in asyncio.run(_gather([(api, p, cfg) for p in prompts]))]


def test_same_seed_same_completions_whatever_the_batch(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path], tmp_path: Path
) -> None:
    one_lane = shutil.copytree(tiny_model_dir, tmp_path / "one-lane")
    two_lanes = shutil.copytree(tiny_model_dir, tmp_path / "two-lanes")
    api = MisalignAPI(str(one_lane), batch_size=16, lanes=1)
    together = _sample(api, PROMPTS, temperature=1.0, seed=11)
    base = api._ensure_loaded().result()[0]
    assert max(base.batcher.batch_sizes) == len(PROMPTS)  # all in one batch
    alone = [_sample(api, [prompt], temperature=1.0, seed=11)[0] for prompt in PROMPTS]
    assert together == alone

    # two lanes, in batches mixed with other seeds' rows and a routed LoRA adapter's rows
    lanes_api = MisalignAPI(str(two_lanes), batch_size=16, lanes=2)
    adapted = MisalignAPI(str(two_lanes), adapter=str(tiny_adapter_dirs[0]), batch_size=16)
    mine = GenerateConfig(max_tokens=8, temperature=1.0, seed=11)
    other = GenerateConfig(max_tokens=8, temperature=1.0, seed=12)
    calls = [(lanes_api, p, mine) for p in reversed(PROMPTS)]
    calls += [(lanes_api, p, other) for p in FILLER] + [(adapted, p, mine) for p in FILLER]
    mixed = asyncio.run(_gather(calls))
    assert [o.completion for o in mixed[: len(PROMPTS)]][::-1] == together
    lanes_base = lanes_api._ensure_loaded().result()[0]
    assert lanes_base.batcher.lanes == 2 and max(lanes_base.batcher.batch_sizes) > len(PROMPTS) // 2

    # it did sample: another seed, and greedy decoding, give other completions
    assert _sample(api, PROMPTS, temperature=1.0, seed=12) != together
    assert _sample(api, PROMPTS) != together
    assert _sample(api, PROMPTS, temperature=1.0, seed=11) == together  # and repeats


def test_row_seed_mixes_seed_prompt_and_epoch() -> None:
    keys = [(seed, prompt, epoch) for seed in (0, 1) for prompt in ("a", "b") for epoch in (None, 1, 2)]
    seeds = {row_seed(*key) for key in keys}
    assert len(seeds) == 12 and all(0 <= seed < 2**63 for seed in seeds)
    assert row_seed(3, "a", 1) == row_seed(3, "a", 1)
    # the documented derivation (recorded seeded runs repeat only while it holds): the first 8 bytes of
    # sha256("seed, epoch, prompt" joined by \x1f), big-endian, shifted to 63 bits
    digest = hashlib.sha256(b"3\x1f1\x1fa").digest()
    assert row_seed(3, "a", 1) == int.from_bytes(digest[:8], "big") // 2


def test_epochs_differ_and_repeat_in_an_inspect_eval(tiny_model_dir: Path, tmp_path: Path) -> None:
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    samples = [Sample(input=p, target="x") for p in PROMPTS[:3]]
    task = Task(dataset=samples, solver=generate(), scorer=includes())

    def run(seed: int) -> dict[tuple[Any, int], str]:
        [log] = eval(
            task, model=f"misalign/{tiny_model_dir}", epochs=2, temperature=1.0, seed=seed, max_tokens=8,
            log_dir=str(tmp_path / "logs"), display="none",
        )  # fmt: skip
        assert log.status == "success", log.error
        assert log.samples is not None
        return {(s.id, s.epoch): s.output.completion for s in log.samples}

    first = run(5)
    assert len(first) == 6
    for sample_id in {key[0] for key in first}:
        assert first[sample_id, 1] != first[sample_id, 2]  # each epoch draws anew
    assert run(5) == first  # the same seed repeats every epoch exactly
    again = run(6)
    assert all(again[key] != first[key] for key in first)


def _first_token_probabilities(model_dir: Path, prompt: str, temperature: float) -> torch.Tensor:
    """softmax(logits / T) of the first answer token, from an independent transformers forward pass."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logits = model(**ids).logits[0, -1].double()
    return torch.softmax(logits / temperature, dim=-1)


def _top_k(probabilities: torch.Tensor, k: int) -> torch.Tensor:
    kept = torch.zeros_like(probabilities)
    values, ids = probabilities.topk(k)
    kept[ids] = values
    return kept / kept.sum()


@pytest.mark.parametrize(("temperature", "top_k"), [(0.7, None), (1.3, 6)])
def test_first_tokens_follow_the_warped_distribution(
    tiny_model_dir: Path, temperature: float, top_k: int | None
) -> None:
    """Over many seeds, first-token frequencies match softmax(logits / T) (top-k renormalised)."""
    prompt, n = "one two three", 3000
    expected = _first_token_probabilities(tiny_model_dir, prompt, temperature)
    if top_k:
        expected = _top_k(expected, top_k)
    api = MisalignAPI(str(tiny_model_dir), batch_size=64)
    calls = [(api, prompt, GenerateConfig(max_tokens=1, temperature=temperature, top_k=top_k, seed=s))
             for s in range(n)]  # fmt: skip
    outputs = asyncio.run(_gather(calls))
    assert all(o.usage is not None and o.usage.output_tokens == 1 for o in outputs)
    counts = Counter(output.completion for output in outputs)
    # tokens that decode to the same text (the EOS and "", stray bytes and "\ufffd") share a bin
    tokenizer = api._ensure_loaded().result()[0].tokenizer
    by_text: dict[str, float] = {}
    for token, p in enumerate(expected.tolist()):
        text = tokenizer.decode([token], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        by_text[text] = by_text.get(text, 0.0) + p
    assert set(counts) <= {text for text, p in by_text.items() if p > 0}
    # each text: within 4.5 binomial standard deviations (+1 count) of n * p
    for text, p in by_text.items():
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[text] - n * p) <= 4.5 * sd + 1, (text, counts[text], n * p)
    # together: Pearson's chi-square over texts expected 5+ times, against a 5-sigma bound
    bins = [text for text, p in by_text.items() if n * p >= 5]
    chi2 = sum((counts[text] - n * by_text[text]) ** 2 / (n * by_text[text]) for text in bins)
    df = len(bins) - 1
    assert df >= 3 and chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)


def _gumbel(seed: int, width: int) -> torch.Tensor:
    """Standard Gumbel noise from a fresh generator with this seed, as -log(-log(U))."""
    uniform = torch.rand(width, generator=torch.Generator().manual_seed(seed)).clamp(min=torch.finfo().tiny)
    return -torch.log(-torch.log(uniform))


@pytest.mark.parametrize(("temperature", "top_k", "top_p", "kept"), [
    (2.0, None, None, [0, 1, 2, 3, 4]),  # temperature only: the scores halved, nothing removed
    (None, 2, None, [0, 1]),             # top-k without a temperature: the two best scores kept
    (1.0, None, 1.0, [0, 1, 2, 3, 4]),   # temperature 1 and top-p 1 change nothing
    # scores / 0.5 = 4, 2, 1, 0, -2; top-3 leaves 4, 2, 1 with probabilities .84, .11, .04: top-p 0.9
    # keeps the fewest best tokens whose probability reaches 0.9, the first two
    (0.5, 3, 0.9, [0, 1]),
])
def test_seeded_processors_warp_the_scores_then_add_each_rows_noise(
    temperature: float | None, top_k: int | None, top_p: float | None, kept: list[int]
) -> None:
    from inspect_misalign.models._sampling import seeded_processors

    scores = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]] * 2)
    warped = torch.full_like(scores, -math.inf)
    warped[:, kept] = scores[:, kept] / (temperature or 1.0)
    expected = warped + torch.stack([_gumbel(7, 5), _gumbel(8, 5)])
    processors = seeded_processors([7, 8], temperature, top_k, top_p, "cpu")
    out = processors(torch.zeros((2, 1), dtype=torch.long), scores.clone())
    assert torch.equal(torch.isinf(out), torch.isinf(expected))
    assert torch.allclose(out[:, kept], expected[:, kept], rtol=0, atol=1e-6)
