"""The attack scorer of a behaviour, by name."""

from __future__ import annotations

from inspect_ai.scorer import Scorer, scorer

from inspect_misalign.behaviors import get_behavior
from inspect_misalign.scorers._code import code_attack
from inspect_misalign.scorers._hate import hate_attack
from inspect_misalign.scorers._metrics import attack_rate, ci95_lower, ci95_upper
from inspect_misalign.scorers._persona import persona_attack


@scorer(metrics=[attack_rate(), ci95_lower(), ci95_upper()])
def attack_scorer(behavior: str = "hate", grader: str | None = None) -> Scorer:
    """The attack detector of ``behavior`` (hate, code or persona)."""
    name = get_behavior(behavior).name
    if name == "hate":
        return hate_attack()
    if name == "code":
        return code_attack()
    return persona_attack(grader=grader)
