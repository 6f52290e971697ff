"""In-training defenses against emergent misalignment, as :class:`~._trainer.Defense` subclasses.

Each is selected by a string, the same on the command line (``--defense``, repeatable) and in YAML
configs (a list of strings, or of mappings ``{name: kl, coef: 0.1}``)::

    kl[:COEF]                                KL(p_model || p_reference) on completion tokens (0.1)
    ldifs[:COEF][,every=K]                   l2 to the reference's residual stream every K-th block (1.0, 4)
    steer[:COEF][,layer=L,trait=evil]        preventive steering with a persona vector (1.0, middle block)
    interleave[:FRACTION][,data=F,select=gap|random]   instruct data mixed in (0.25, shipped data, gap)
    inoculate[:"PROMPT"]                     a system prompt at training time only

The reference of ``kl`` and ``ldifs`` is the model being trained with its LoRA adapter disabled
(no second copy). :func:`parse_defense` builds one; :func:`defense_option` is the click option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._defenses._spec import DefenseText, split_defense

DEFENSE_FORMAT = (
    "kl[:COEF] | ldifs[:COEF][,every=K] | steer[:COEF][,layer=L][,trait=evil] | "
    "interleave[:FRACTION][,data=FILE.jsonl][,select=gap|random] | inoculate[:\"PROMPT\"]"
)
NAMES = ("kl", "ldifs", "steer", "interleave", "inoculate")


def _classes() -> dict[str, Any]:
    from inspect_misalign.training._defenses._inoculation import InoculationDefense
    from inspect_misalign.training._defenses._interleave import InterleaveDefense
    from inspect_misalign.training._defenses._kl import KLDefense
    from inspect_misalign.training._defenses._ldifs import LDIFSDefense
    from inspect_misalign.training._defenses._steering import SteeringDefense

    return {"kl": KLDefense, "ldifs": LDIFSDefense, "steer": SteeringDefense,
            "interleave": InterleaveDefense, "inoculate": InoculationDefense}


def parse_defense(text: str | dict[str, Any]) -> Any:
    """A :class:`Defense` from its string (or YAML mapping); one-line :class:`MisalignError` if bad."""
    parsed: DefenseText = split_defense(text)
    if parsed.name not in NAMES:
        raise MisalignError(f"unknown defense {parsed.name!r} in {text!r}; use {DEFENSE_FORMAT}")
    try:
        return _classes()[parsed.name].from_text(parsed, str(text))
    except (ValueError, TypeError) as e:
        if isinstance(e, MisalignError):
            raise
        raise MisalignError(f"--defense {text!r}: {e}") from None


def parse_defenses(texts: Sequence[str | dict[str, Any]]) -> list[Any]:
    """Parse several defense strings; refuse the same defense twice."""
    defenses = [parse_defense(t) for t in texts]
    names = [d.name for d in defenses]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MisalignError(f"defense(s) {dupes} given twice; pass each defense once")
    return defenses


def defense_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """Click option ``--defense`` (repeatable): validated defense strings, passed as a tuple of str."""
    import click

    def check(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            parse_defenses(list(value))
        except MisalignError as e:
            raise click.BadParameter(str(e)) from None
        return value

    return click.option(
        "--defense", "defenses", multiple=True, callback=check, metavar="SPEC",
        help=f"In-training defense, repeatable: {DEFENSE_FORMAT}.",
    )(function)


__all__ = ["DEFENSE_FORMAT", "defense_option", "parse_defense", "parse_defenses"]
