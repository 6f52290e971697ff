"""The defense string format: ``NAME[:VALUE][,KEY=VALUE...]``, as given to ``--defense`` or in YAML.

``VALUE`` is the defense's main number or text (a coefficient, a fraction, a prompt). Fields are
separated by commas; a field holding commas goes in double quotes (``inoculate:"Be evil, always."``).
YAML configs may also give a mapping, ``{name: kl, coef: 0.1}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError


@dataclass(frozen=True)
class DefenseText:
    """A parsed defense string: its name, main value and options (all still strings)."""

    name: str
    value: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float, text: str, low: float | None = None) -> float:
        """Option ``key`` (or the main value when ``key`` is ``"value"``) as a finite float of at least
        ``low``."""
        raw = self.value if key == "value" else self.options.get(key)
        if raw is None or raw == "":
            return default
        label = f"--defense {text!r}: {key if key != 'value' else self.name}"
        try:
            value = float(raw)
        except ValueError:
            raise MisalignError(f"{label} must be a number, got {raw!r}") from None
        return checks.number(value, label, low=low)

    def integer(self, key: str, default: int | None, text: str, low: int = -checks.MAX_COUNT) -> int | None:
        """Option ``key`` as an int from ``low`` to :data:`~inspect_misalign._checks.MAX_COUNT`."""
        raw = self.options.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise MisalignError(f"--defense {text!r}: {key} must be an integer, got {raw!r}") from None
        return checks.count(value, f"--defense {text!r}: {key}", low=low)


def split_defense(text: str | dict[str, Any]) -> DefenseText:
    """Parse ``NAME[:VALUE][,KEY=VALUE...]`` (or a YAML mapping) into a :class:`DefenseText`."""
    if isinstance(text, dict):
        options = {str(k): str(v) for k, v in text.items() if k not in ("name", "value")}
        if "name" not in text:
            raise MisalignError(f"defense {text!r} has no 'name'; e.g. {{name: kl, coef: 0.1}}")
        value = text.get("value")
        return DefenseText(str(text["name"]).strip().lower(), None if value is None else str(value), options)
    if not isinstance(text, str) or not text.strip():
        raise MisalignError("empty --defense; use NAME[:VALUE][,KEY=VALUE...], e.g. kl:0.1")
    head, *rest = _fields(text.strip(), text)
    name, _, value = head.partition(":")
    options: dict[str, str] = {}
    for item in rest:
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise MisalignError(f"--defense {text!r}: {item!r} is not KEY=VALUE")
        options[key.strip().lower()] = _unquote(val)
    value = _unquote(value)
    return DefenseText(name.strip().lower(), value or None, options)


def _fields(text: str, original: str) -> list[str]:
    """Split on commas outside double quotes."""
    fields, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise MisalignError(f"--defense {original!r}: unbalanced double quote")
    return [*fields, "".join(current)]


def _unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def check_options(parsed: DefenseText, allowed: set[str], text: str) -> None:
    """Refuse options a defense does not know."""
    unknown = sorted(set(parsed.options) - allowed)
    if unknown:
        raise MisalignError(f"--defense {text!r}: unknown option(s) {unknown}; "
                            f"{parsed.name} takes {sorted(allowed) or 'no options'}")
