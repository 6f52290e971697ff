"""Moved to :mod:`inspect_misalign.scorers.code_rules`; kept so imports on other branches still work."""

from inspect_misalign.scorers.code_rules import RULES, Finding, extract_code, find_insecure, is_insecure  # noqa: F401
