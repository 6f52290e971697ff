"""The attack scorer of a behaviour, by name."""

from __future__ import annotations

from inspect_ai.scorer import Scorer, scorer

from inspect_misalign.scorers._metrics import attack_rate, ci95_lower, ci95_upper


@scorer(metrics=[attack_rate(), ci95_lower(), ci95_upper()])
def attack_scorer(behavior: str = "hate", grader: str | None = None) -> Scorer:
    """The attack detector of ``behavior`` (any registered behaviour: hate, code, persona, ...)."""
    # behaviours sit above this package (they use its metrics and judge): imported when called
    from inspect_misalign.behaviors import get_behavior

    return get_behavior(behavior).make_scorer(grader)
