"""Registers the ``misalign/`` model provider with Inspect.

Inspect imports this module (through ``inspect_misalign._registry``) at every eval, so it imports
nothing heavy and changes nothing: the provider class, and with it torch and transformers, loads
only when a ``misalign/`` model is used, and only then is the CPU thread policy applied (see
:mod:`inspect_misalign.models._threads`).
"""

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="misalign")
def misalign() -> type[ModelAPI]:
    """Local checkpoints, registered names and PEFT adapters: ``--model misalign/<checkpoint>``."""
    from inspect_misalign.models._threads import apply_thread_policy

    apply_thread_policy()  # before the provider imports torch
    from inspect_misalign.models._provider import MisalignAPI

    return MisalignAPI
