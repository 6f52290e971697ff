"""Behaviours: what counts as an attack, one module each (its detector, scorer, attacks, budgets).

Every public module of this package defines one :class:`Behavior` and registers it with
:func:`register_behavior`; the modules are imported here, so adding a behaviour is one file (plus
its base prompts under ``inspect_misalign/data``). A behaviour defined elsewhere is registered the
same way, by importing the module that calls :func:`register_behavior`, or found by name through
the ``inspect_misalign.behaviors`` entry-point group of its distribution (:mod:`inspect_misalign._plugins`).
"""

from __future__ import annotations

import importlib
import pkgutil

from inspect_misalign.behaviors._base import (
    BEHAVIORS,
    Behavior,
    PromptLike,
    TokenBudgets,
    get_behavior,
    register_behavior,
)

_FIRST = ("hate", "code", "persona")  # the built-ins, in the order the choices are listed
for _name in (*_FIRST, *sorted(m.name for m in pkgutil.iter_modules(__path__))):
    if not _name.startswith("_"):
        importlib.import_module(f"{__name__}.{_name}")

__all__ = ["BEHAVIORS", "Behavior", "PromptLike", "TokenBudgets", "get_behavior", "register_behavior"]
