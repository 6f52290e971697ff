"""In-training defenses against emergent misalignment, as :class:`~inspect_misalign.training.Defense` hooks.

Each is selected by a string, the same on the command line (``--defense``, repeatable) and in YAML
configs (a list of strings, or of mappings ``{name: kl, coef: 0.1}``)::

    kl[:COEF]                                KL(p_model || p_reference) on completion tokens (0.1)
    ldifs[:COEF][,every=K]                   l2 to the reference's residual stream every K-th block (1.0, 4)
    steer[:COEF][,layer=L,trait=evil]        preventive steering with a persona vector (1.0, middle block)
    interleave[:FRACTION][,data=F,select=gap|random]   instruct data mixed in (0.25, shipped data, gap)
    inoculate[:"PROMPT"]                     a system prompt at training time only

The reference of ``kl`` and ``ldifs`` is the model being trained with its LoRA adapter disabled
(no second copy). :func:`parse_defense` builds one. Every module of this package that defines a
:class:`Defense` subclass adds it under its ``name`` (adding a defense is one file); other
distributions add defenses through the ``inspect_misalign.defenses`` entry-point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from functools import cache
from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign._plugins import load_plugin, plugin_names
from inspect_misalign.training._defenses._spec import DefenseText, split_defense
from inspect_misalign.training._hook import Defense

DEFENSE_FORMAT = (
    "kl[:COEF] | ldifs[:COEF][,every=K] | steer[:COEF][,layer=L][,trait=evil] | "
    "interleave[:FRACTION][,data=FILE.jsonl][,select=gap|random] | inoculate[:\"PROMPT\"]"
)
"""The built-in defenses' strings (help text; :func:`defense_names` lists every defense, plugins too)."""


@cache
def builtin_defenses() -> dict[str, type[Defense]]:
    """The :class:`Defense` subclasses this package's modules define, by name (imports them: torch)."""
    found: dict[str, type[Defense]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Defense) and value.__module__ == module.__name__:
                found[value.name] = value
    return found


def defense_names() -> list[str]:
    """Every defense name: the built-in ones, then those of plugins."""
    builtin = list(builtin_defenses())
    return [*builtin, *(n for n in plugin_names("defenses") if n not in builtin)]


def _defense_class(name: str, text: Any) -> Any:
    found = builtin_defenses().get(name) or load_plugin("defenses", name)
    if found is None:
        raise MisalignError(f"unknown defense {name!r} in {text!r}; use {DEFENSE_FORMAT} "
                            f"(defenses: {', '.join(defense_names())})")
    if not (isinstance(found, type) and issubclass(found, Defense)):
        raise MisalignError(f"defense {name!r} is not a Defense subclass: {found!r}")
    return found


def parse_defense(text: str | dict[str, Any]) -> Any:
    """A :class:`Defense` from its string (or YAML mapping); one-line :class:`MisalignError` if bad."""
    parsed: DefenseText = split_defense(text)
    cls = _defense_class(parsed.name, text)
    try:
        return cls.from_text(parsed, str(text))
    except (ValueError, TypeError) as e:
        if isinstance(e, MisalignError):
            raise
        raise MisalignError(f"--defense {text!r}: {e}") from None


def parse_defenses(texts: Sequence[str | dict[str, Any]]) -> list[Any]:
    """Parse the defense strings of a training run; refuse the same defense twice, and a defense that
    still needs a grader's judgements (``needs_grader``: only a sweep can give it them)."""
    defenses = [parse_defense(t) for t in texts]
    names = [d.name for d in defenses]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MisalignError(f"defense(s) {dupes} given twice; pass each defense once")
    for text, defense in zip(texts, defenses, strict=True):
        if getattr(defense, "needs_grader", False):
            raise MisalignError(f"--defense {text!r} needs answers generated and judged by a grader: run "
                                "it in an em_defenses sweep with --model-role grader=<model>, or pass "
                                "answers=<a JSONL of judged answers> or answers=fixed")
    return defenses


__all__ = ["DEFENSE_FORMAT", "builtin_defenses", "defense_names", "parse_defense", "parse_defenses"]
