"""One lock for loading weights in this process (torch-free, so the models package can export it)."""

from __future__ import annotations

import threading

_LOCK = threading.RLock()
"""Held while transformers or peft are first imported or load weights, on any thread (the provider's
background loader, training: :func:`weights_lock`): transformers 5's ``from_pretrained`` swaps
``PreTrainedModel.tie_weights`` for a no-op class-wide while it loads, so two loads on two threads
could leave a tied model's output head unloaded (on the meta device) and the no-op in place; and two
threads importing transformers' lazy modules at once can hit Python's import deadlock detection,
which transformers reports as ``cannot import name 'AutoModelForCausalLM'``."""


def weights_lock() -> threading.RLock:
    """The lock every import of transformers or peft and every ``from_pretrained`` holds, in this
    package's inference and training alike: a sweep that trains while a provider made for a cached eval
    still loads its weights on a background thread must not load beside it."""
    return _LOCK
