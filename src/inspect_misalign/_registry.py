"""Entry point for Inspect (group ``inspect_ai``): registers tasks, scorers, solvers and providers.

Inspect imports this module at every eval, so it must stay free of torch/transformers imports.
"""

# ruff: noqa: F401
from inspect_misalign.models import misalign
from inspect_misalign.scorers import (
    attack_scorer,
    code_attack,
    distinguish_scorer,
    hate_attack,
    persona_attack,
    probe_features,
    propensity_scorer,
    usefulness_scorer,
)
from inspect_misalign.tasks import (
    context_probe,
    deployment_attacks,
    distinguishability,
    free_form_misalignment,
    propensity,
    test_attacks,
    usefulness,
)
