"""Inspect tasks: attack rates and propensity in test and deployment, usefulness, distinguishability,
context probe, trigger probes, free form."""

from inspect_misalign.tasks._attacks import deployment_attacks, test_attacks
from inspect_misalign.tasks._distinguishability import distinguishability
from inspect_misalign.tasks._free_form import free_form_misalignment
from inspect_misalign.tasks._probe import context_probe
from inspect_misalign.tasks._probes import trigger_probes
from inspect_misalign.tasks._propensity import propensity
from inspect_misalign.tasks._usefulness import usefulness

__all__ = [
    "context_probe",
    "deployment_attacks",
    "distinguishability",
    "free_form_misalignment",
    "propensity",
    "test_attacks",
    "trigger_probes",
    "usefulness",
]
