"""Solvers: scratchpad handling around generation."""

from inspect_misalign.solvers._scratchpad import split_scratchpad, strip_scratchpad

__all__ = ["split_scratchpad", "strip_scratchpad"]
