"""Filling ``{name}`` placeholders without str.format, so braces in prompts and code stay intact."""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_fields(template: str, fields: dict[str, str]) -> str:
    """Replace ``{name}`` for each name in ``fields``; every other brace is left as it is."""
    return _PLACEHOLDER.sub(lambda m: fields.get(m.group(1), m.group(0)), template)
