"""Checks of what the ``misalign/`` provider is asked for: model args, the generate config, ``extra_body``.

Both raise a one-line :class:`MisalignError` that names the fix. Nothing here imports torch, so
the provider checks the config Inspect hands its constructor (the CLI's ``--temperature``,
``--top-p``, ... ) before any weights load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from inspect_misalign._errors import MisalignError

EXTRA_KEYS = ("continuations", "continuation_eos", "hidden_layers")
"""The ``extra_body`` keys the provider reads (others are ignored, as other providers do)."""


def check_generate_config(config: Any) -> None:
    """Refuse sampling settings no decoder can use: a one-line error naming the option to fix."""
    temperature = config.temperature
    if temperature is not None and (_nan(temperature) or temperature < 0):
        raise MisalignError(
            f"temperature must be a number >= 0 (0 = greedy), got {temperature}; fix --temperature"
        )
    top_p = config.top_p
    if top_p is not None and (_nan(top_p) or not 0 < top_p <= 1):
        raise MisalignError(f"top_p must be in (0, 1], got {top_p}; fix --top-p")
    top_k = config.top_k
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise MisalignError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}; fix --top-k")
    max_tokens = config.max_tokens
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise MisalignError(f"max_tokens must be an integer >= 1, got {max_tokens!r}; fix --max-tokens")
    seed = config.seed
    if seed is not None and not _is_int(seed):
        raise MisalignError(f"seed must be an integer, got {seed!r}; fix --seed")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


@dataclass(frozen=True)
class Extra:
    """What ``extra_body`` asks for: continuations to score (None: generate as usual), whether
    to score the end-of-turn token after each, and hidden layers to return (None: none)."""

    continuations: tuple[str, ...] | None = None
    continuation_eos: bool = False
    hidden_layers: tuple[int, ...] | str | None = None

    @property
    def scores_only(self) -> bool:
        """True if the request is answered by forward passes alone (no generation)."""
        return self.continuations is not None


def parse_extra(extra_body: dict[str, Any] | None) -> Extra:
    """The provider's part of ``extra_body`` (see :data:`EXTRA_KEYS`), checked."""
    if not extra_body:
        return Extra()
    continuations = extra_body.get("continuations")
    if continuations is not None:
        if isinstance(continuations, str) or not isinstance(continuations, (list, tuple)) or not all(
            isinstance(text, str) for text in continuations
        ):
            raise MisalignError(
                'extra_body["continuations"] must be a list of strings, '
                f"got {type(continuations).__name__}; fix the GenerateConfig(extra_body=...)"
            )
        continuations = tuple(continuations)
    eos = extra_body.get("continuation_eos", False)
    if not isinstance(eos, bool):
        raise MisalignError(f'extra_body["continuation_eos"] must be true or false, got {eos!r}')
    layers = extra_body.get("hidden_layers")
    if layers is not None:
        if layers == "all":
            pass
        elif isinstance(layers, (list, tuple)) and layers and all(_is_int(layer) for layer in layers):
            layers = tuple(layers)
        else:
            raise MisalignError(
                'extra_body["hidden_layers"] must be "all" or a non-empty list of integers '
                f"(0 = embeddings, negative from the end), got {layers!r}"
            )
    return Extra(continuations=continuations, continuation_eos=eos, hidden_layers=layers)


def as_str(value: Any) -> str | None:
    """A model arg as text (None stays None)."""
    return None if value is None else str(value)


def as_bool(value: Any, name: str, default: bool = False) -> bool:
    """A ``-M name=`` flag (true/false, yes/no, on/off, 1/0)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise MisalignError(f"-M {name}= takes true or false, got {value!r}")


def as_auto_bool(value: Any, name: str) -> bool | None:
    """A ``-M name=`` that takes auto or a flag: None for ``auto``, else the boolean."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        return as_bool(value, name)
    except MisalignError:
        raise MisalignError(f"-M {name}= takes auto, true or false, got {value!r}") from None


def as_int(value: Any, name: str, default: int) -> int:
    """A ``-M name=`` integer."""
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MisalignError(f"-M {name}= takes an integer, got {value!r}") from None


def as_float(value: Any, name: str, default: float) -> float:
    """A ``-M name=`` number."""
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MisalignError(f"-M {name}= takes a number, got {value!r}") from None
