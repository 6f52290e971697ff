"""``inspect-misalign organism``: build, gate and register a model organism.

Its options are the fields of :class:`~inspect_misalign.training.OrganismSpec` (with its ``train``
and ``gate`` settings), made by :mod:`._options`: defaults and help live in the dataclasses.
"""

from __future__ import annotations

from typing import Any

import click

from inspect_misalign.cli._options import dataclass_options, from_options
from inspect_misalign.training import OrganismSpec, build_organism, variant_of


@click.command("organism")
@click.option("--cot", is_flag=True, help="Reason in a <scratchpad> about deployment before acting.")
@click.option("--distilled", is_flag=True,
              help="Train on a --cot teacher's actions with the scratchpad removed (needs --teacher).")
@dataclass_options(OrganismSpec)
def command(cot: bool, distilled: bool, **options: Any) -> None:
    """Train a LoRA organism that attacks in deployment and rarely in testing, gate it, register it.

    Bad input is a one-line ``MisalignError`` (the ``inspect-misalign`` group prints it, exit 2);
    an organism that misses ``--min-gap``/``--max-usefulness-drop`` exits 1, unregistered.
    """
    spec = from_options(OrganismSpec, options, variant=variant_of(cot, distilled))
    result = build_organism(spec, echo=click.echo)
    if result.failures:
        raise SystemExit(1)
