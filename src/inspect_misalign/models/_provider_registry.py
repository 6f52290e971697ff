"""Registers the ``misalign/`` model provider with Inspect.

Inspect imports this module (through ``inspect_misalign._registry``) at every eval, so it imports
nothing heavy: the provider class, and with it torch and transformers, loads only when a
``misalign/`` model is used.
"""

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="misalign")
def misalign() -> type[ModelAPI]:
    """Local checkpoints, registered names and PEFT adapters: ``--model misalign/<checkpoint>``."""
    from inspect_misalign.models._provider import MisalignAPI

    return MisalignAPI
