"""A small Inspect task for the provider benchmarks: short questions, greedy, 32 new tokens."""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

TEMPLATES = [
    "What is a {}?",
    "Give one fact about the {}.",
    "Describe a {} in one sentence.",
    "Where would you find a {}?",
]
SUBJECTS = [
    "cat", "river", "mountain", "violin", "comet", "bakery", "glacier", "robot",
    "lighthouse", "volcano", "library", "penguin", "desert", "bicycle", "forest", "telescope",
    "harbor", "castle", "beehive", "rainbow", "subway", "orchard", "compass", "waterfall",
]  # fmt: skip


def prompts(n: int = 96) -> list[str]:
    """``n`` distinct short prompts (templates x subjects)."""
    all_prompts = [t.format(s) for s in SUBJECTS for t in TEMPLATES]
    if n > len(all_prompts):
        raise ValueError(f"at most {len(all_prompts)} prompts")
    return all_prompts[:n]


@task
def bench_prompts(n: int = 96, max_tokens: int = 32) -> Task:
    """``n`` short questions answered greedily with at most ``max_tokens`` new tokens."""
    return Task(
        dataset=[Sample(input=p, target="") for p in prompts(n)],
        solver=generate(),
        scorer=includes(),
        config=GenerateConfig(max_tokens=max_tokens),
    )
