"""Checks of single values a user gives: the one validation layer under every command and task.

Each check returns the value (converted where that is unambiguous) or raises a one-line
:class:`MisalignError` that starts with ``label`` (``--steps``, ``max_tokens``, ``organism x build.lr``)
and ends with ``fix`` (``"; fix -T max_tokens="``). The config dataclasses
(:mod:`inspect_misalign.training._fields`), the tasks' arguments (:mod:`inspect_misalign.tasks._common`)
and the sweep YAML use these, so a count, a seed or a path means the same everywhere. They look at
values only; what needs the disk or the registry is checked by each command before anything loads.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inspect_misalign._errors import MisalignError

MAX_COUNT = 10**9
"""The largest count anything takes (steps, tokens, prompts, batch size): far beyond a real run, and
below what overflows a C integer in torch or numpy."""
MAX_SEED = 2**32 - 1
"""numpy's (and so transformers' ``set_seed``) largest seed."""


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """A finite ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def count(value: Any, label: str, *, low: int = 1, high: int = MAX_COUNT, fix: str = "") -> int:
    """An integer from ``low`` to ``high`` (:data:`MAX_COUNT` unless told)."""
    if not is_integer(value) or value < low:
        bound = "at least 1" if low == 1 else f"{low} or more"
        raise MisalignError(f"{label} must be {bound}, got {value!r}{fix}")
    if value > high:
        raise MisalignError(f"{label} must be at most {high}, got {value}{fix}")
    return value


def seed(value: Any, label: str, *, fix: str = "") -> int:
    """A seed: an integer from 0 to :data:`MAX_SEED`."""
    if not is_integer(value) or not 0 <= value <= MAX_SEED:
        raise MisalignError(f"{label} must be an integer from 0 to {MAX_SEED}, got {value!r}{fix}")
    return value


def number(
    value: Any, label: str, *, low: float | None = None, high: float | None = None, above: bool = False,
    fix: str = "",
) -> float:
    """A finite number, at least ``low`` (above it with ``above``) and at most ``high``."""
    too_low = low is not None and is_finite(value) and (value <= low if above else value < low)
    if not is_finite(value) or too_low or (high is not None and value > high):
        if low is not None and high is not None:
            bound = f"{'positive' if low == 0 and above else f'at least {low:g}'} and at most {high:g}"
        elif low == 0 and above:
            bound = "positive"
        elif low is not None:
            bound = f"{'above' if above else 'at least'} {low:g}"
        else:
            bound = "a finite number" if high is None else f"at most {high:g}"
        raise MisalignError(f"{label} must be {bound}, got {value!r}{fix}")
    return float(value)


def choice(value: Any, label: str, choices: Iterable[Any], *, fix: str = "") -> Any:
    """One of ``choices`` (compared as given: ``'5'`` is not ``5``)."""
    choices = tuple(choices)
    if isinstance(value, list | dict | set) or value not in choices:
        raise MisalignError(f"unknown {label} {value!r}; choose one of {', '.join(map(str, choices))}{fix}")
    return value


def joined(value: Any, label: str, choices: Iterable[str], *, noun: str, fix: str = "") -> tuple[str, ...]:
    """Distinct ``choices`` joined by ``+`` (``dev+catch``; one alone is fine): the parts."""
    choices = tuple(choices)
    parts = tuple(value.split("+")) if isinstance(value, str) else ()
    if not parts or len(set(parts)) != len(parts) or any(part not in choices for part in parts):
        raise MisalignError(f"unknown {label} {value!r}; join distinct {noun} of {', '.join(choices)} "
                            f"with +{fix}")
    return parts


def flag(value: Any, label: str, *, fix: str = "") -> bool:
    """A ``bool`` (YAML's ``true``/``false``; a string or a number is refused, not guessed at)."""
    if not isinstance(value, bool):
        raise MisalignError(f"{label} must be true or false, got {value!r}{fix}")
    return value


def text(value: Any, label: str, *, fix: str = "", max_length: int = 100_000) -> str:
    """A non-empty string without control characters (a newline, a NUL) and not absurdly long."""
    if not isinstance(value, str) or not value.strip():
        raise MisalignError(f"{label} must be a non-empty string, got {value!r}{fix}")
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise MisalignError(f"{label} must be one line of text without control characters, got "
                            f"{value!r}{fix}")
    if len(value) > max_length:
        raise MisalignError(f"{label} of {len(value)} characters is too long (at most {max_length}){fix}")
    return value


def model_name(value: Any, label: str, *, fix: str = "") -> str:
    """An Inspect model name, ``provider/model`` (syntax only: nothing is constructed)."""
    name = text(value, label, fix=fix, max_length=4096)
    provider, slash, rest = name.partition("/")
    if not slash or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", provider) or not rest.strip() \
            or name != name.strip():
        raise MisalignError(f"{label} must be an Inspect model name like openai/gpt-4o-mini or "
                            f"misalign/default, got {value!r}{fix}")
    return name


def path(value: Any, label: str, *, fix: str = "") -> Path:
    """A path as text (or ``os.PathLike``): non-empty, no NUL or newline, within the OS's name limits."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise MisalignError(f"{label} must be a file path, got {value!r}{fix}")
    text(value, label, fix=fix, max_length=4096)
    if any(len(part.encode()) > 255 for part in Path(value).parts):
        raise MisalignError(f"{label}: a path component is longer than 255 bytes{fix}")
    return Path(value)


def writable_file(value: Any, label: str) -> Path:
    """A path a file can be written to atomically (a temp file beside it, then a rename): not a
    directory, in a folder we may write in (created if missing, so its nearest existing ancestor is
    checked)."""
    target = path(value, label)
    if target.is_dir():
        raise MisalignError(f"{label} {target} is a directory; give a file path")
    folder = target.parent if str(target.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise MisalignError(f"{label} {target}: cannot write in {folder}; give a path in a writable folder")
    return target


__all__ = [
    "MAX_COUNT",
    "MAX_SEED",
    "choice",
    "count",
    "flag",
    "is_finite",
    "is_integer",
    "model_name",
    "number",
    "path",
    "seed",
    "text",
    "writable_file",
]
