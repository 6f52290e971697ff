"""Checks and names both kinds of sweep config share: the sweep's name, its seeds, a defense in a name."""

from __future__ import annotations

import re

from inspect_misalign import _checks as checks


def check_name(value: str) -> str:
    """A sweep name: letters, digits, '-' and '_' (it starts every checkpoint name)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", value):
        raise ValueError("use letters, digits, '-' and '_' only")
    return value


def check_seeds(values: list[int]) -> list[int]:
    """Seeds the trainer's ``set_seed`` takes."""
    for value in values:
        checks.seed(value, "a seed")
    return values


def defense_slug(defense: str) -> str:
    """A defense string as it appears in a checkpoint name (``kl:0.1`` -> ``kl_0_1``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", defense).strip("_") or "none"


__all__ = ["check_name", "check_seeds", "defense_slug"]
