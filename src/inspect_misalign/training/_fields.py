"""The config layer's tools: one field per setting with its help text, checks, and building from a mapping.

Every setting of a training command is a field of a frozen dataclass, in trl's ``XConfig`` style:
declared with :func:`setting` (default, help text, command-line flag) and checked in the class's
``__post_init__`` with the checks below, each a one-line :class:`MisalignError` that names the
command-line flag. The command line (:mod:`inspect_misalign.cli._options`) and the sweep YAML
(:func:`from_mapping`) are built from the same fields, so each default and each check lives in
exactly one place. Checks here look at values only (ranges, finiteness, choices, name syntax);
what needs the registry or the disk (a registered name, a model directory) is checked by each
command before anything loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from inspect_misalign import _checks as checks
from inspect_misalign._checks import MAX_COUNT
from inspect_misalign._errors import MisalignError


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | None = None,
    cli: bool = True,
    none_below: int | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its help text and command-line form.

    ``flag`` overrides the option name (default ``--field-name``); ``cli=False`` keeps the field off
    the command line (the command sets it another way); ``none_below`` makes a command-line value
    from 0 up to below it mean None (``--steps 0``: train for ``--epochs`` instead); a negative value
    is left to the field's check, which refuses it.
    """
    metadata = {"help": help, "flag": flag, "cli": cli, "none_below": none_below}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(cls: Any, name: str) -> str:
    """The command-line flag of field ``name`` of dataclass ``cls`` (an instance works too)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return field.metadata.get("flag") or f"--{name.replace('_', '-')}"


def check_at_least(obj: Any, low: int, *names: str, optional: bool = False, high: int = MAX_COUNT) -> None:
    """Each field in ``names`` is an integer of at least ``low`` and at most ``high`` (or None with
    ``optional``)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        checks.count(value, flag_of(obj, name), low=low, high=high)


def check_positive(obj: Any, *names: str, optional: bool = False, high: float | None = None) -> None:
    """Each field in ``names`` is a finite number above 0 and at most ``high`` (or None with
    ``optional``)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        checks.number(value, flag_of(obj, name), low=0, above=True, high=high)


def check_fraction(obj: Any, name: str, optional: bool = False) -> None:
    """Field ``name`` is a number between 0 and 1 (or None with ``optional``)."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if not checks.is_finite(value) or not 0 <= value <= 1:
        raise MisalignError(f"{flag_of(obj, name)} must be a fraction between 0 and 1, got {value}")


def check_choice(obj: Any, name: str, choices: Iterable[str]) -> None:
    """Field ``name`` is one of ``choices``."""
    checks.choice(getattr(obj, name), flag_of(obj, name), choices)


def check_joined(obj: Any, name: str, choices: Iterable[str], *, optional: bool = False) -> None:
    """Field ``name`` is distinct ``choices`` joined by ``+`` (``dev+catch``), or None with ``optional``."""
    value = getattr(obj, name)
    if value is not None or not optional:
        checks.joined(value, flag_of(obj, name), choices, noun="values", fix=" (e.g. dev+catch)")


def check_seed(obj: Any, *names: str) -> None:
    """Each field in ``names`` is a seed (0 to 2**32 - 1, what numpy and transformers accept)."""
    for name in names:
        checks.seed(getattr(obj, name), flag_of(obj, name))


def check_model(obj: Any, *names: str, optional: bool = False) -> None:
    """Each field in ``names`` is an Inspect model name, ``provider/model`` (or None with ``optional``)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        checks.model_name(value, flag_of(obj, name))


def check_text(obj: Any, *names: str, optional: bool = False) -> None:
    """Each field in ``names`` is one line of non-empty text (or None with ``optional``)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        checks.text(value, flag_of(obj, name))


def check_path(obj: Any, *names: str, optional: bool = False) -> None:
    """Each field in ``names`` is a usable path (text without NUL or newline); it becomes a ``Path``."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        object.__setattr__(obj, name, checks.path(value, flag_of(obj, name)))


def from_mapping(cls: Any, values: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping (a YAML section); a field that is itself a
    dataclass takes a nested mapping. Unknown keys are a one-line error naming ``where``."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(values, dict) or set(values) - set(known):
        extra = sorted(set(values) - set(known)) if isinstance(values, dict) else values
        raise MisalignError(f"{where}: unknown option(s) {extra}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for key, value in values.items():
        nested = _dataclass_type(cls, known[key])
        kwargs[key] = from_mapping(nested, value, f"{where}.{key}") if nested and isinstance(value, dict) \
            else value
    return cls(**kwargs)


def _dataclass_type(cls: Any, field: dataclasses.Field[Any]) -> Any:
    """The dataclass a field holds (from its default), or None."""
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    return type(default) if dataclasses.is_dataclass(default) else None


__all__ = [
    "check_at_least",
    "check_choice",
    "check_fraction",
    "check_model",
    "check_path",
    "check_positive",
    "check_seed",
    "check_text",
    "flag_of",
    "from_mapping",
    "setting",
]
