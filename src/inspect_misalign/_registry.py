"""Entry point for Inspect (group ``inspect_ai``): registers tasks, scorers, solvers and providers.

Inspect imports this module at every eval, so it must stay free of torch/transformers imports.
"""

# ruff: noqa: F401, E402
from inspect_misalign._excepthook import install as _one_line_errors

_one_line_errors()  # a task's bad input: "Error: ..." and exit 2, not an ExceptionGroup traceback
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
    trigger_probes,
    usefulness,
)
