"""Click options made from a config dataclass's fields, and the dataclass rebuilt from the parsed values.

Like trl's ``TrlParser`` (which builds argparse from dataclasses): each field declared with
:func:`inspect_misalign.training.setting` becomes one option whose name, type, default and help
come from the field, so a default or a help text lives only in the dataclass. A field that holds a
dataclass (an organism's ``train`` and ``gate``) contributes its fields' options; ``cli=False``
keeps a field off the command line; ``none_below`` turns small values into None (``--steps 0``; a
negative value stays, for the field's check to refuse).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal

import click

_SEP = "__"  # parameter names are field paths: train__batch_size


def _fields(cls: Any, prefix: str = "") -> list[tuple[str, dataclasses.Field[Any], Any]]:
    """(parameter name, field, resolved type) of every command-line field, nested dataclasses flattened."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        if not field.metadata.get("cli", True):
            continue
        default = _default(field)
        if dataclasses.is_dataclass(default):
            out += _fields(type(default), f"{prefix}{field.name}{_SEP}")
        else:
            out.append((f"{prefix}{field.name}", field, hints[field.name]))
    return out


def _default(field: dataclasses.Field[Any]) -> Any:
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def _click_type(hint: Any) -> tuple[Any, bool]:
    """(click type, multiple) for a field's type; None is dropped from unions, and a union of other
    types (``--min-gap``: a number or cue=number pairs) is read as text for the dataclass to parse."""
    args = [a for a in typing.get_args(hint) if a is not NoneType]
    if typing.get_origin(hint) in (typing.Union, UnionType):
        return _click_type(args[0]) if len(args) == 1 else (str, False)
    if typing.get_origin(hint) is Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)]), False
    if typing.get_origin(hint) is tuple:
        return _click_type(args[0])[0], True
    if hint is Path:
        return click.Path(path_type=Path), False
    return (hint if hint in (int, float, str, bool) else str), False


def _none_below(limit: int) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def convert(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        return None if value is not None and 0 <= value < limit else value  # a negative one is refused

    return convert


def dataclass_options(cls: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per command-line field of dataclass ``cls``."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for name, field, hint in reversed(_fields(cls)):
            flag = field.metadata.get("flag") or f"--{field.name.replace('_', '-')}"
            kind, multiple = _click_type(hint)
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            default = None if required else _default(field)
            options: dict[str, Any] = {"help": field.metadata.get("help"), "required": required}
            if kind is bool:
                declared = [f"{flag}/--no-{flag.removeprefix('--')}", name]
                options.update(default=default, show_default=True)
            else:
                declared = [flag, name]
                options.update(type=kind, multiple=multiple, default=default,
                               show_default=default not in (None, ()))
            if field.metadata.get("none_below") is not None:
                options["callback"] = _none_below(field.metadata["none_below"])
            function = click.option(*declared, **options)(function)
        return function

    return decorate


def from_options(cls: Any, values: dict[str, Any], **fixed: Any) -> Any:
    """An instance of ``cls`` from the parsed options (keys as :func:`dataclass_options` named them) and
    the ``fixed`` fields the command sets itself."""
    nested: dict[str, dict[str, Any]] = {}
    flat = dict(fixed)
    for key, value in values.items():
        head, sep, rest = key.partition(_SEP)
        if sep:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    for field in dataclasses.fields(cls):
        if field.name in nested:
            flat[field.name] = from_options(type(_default(field)), nested[field.name])
    return cls(**flat)


__all__ = ["dataclass_options", "from_options"]
