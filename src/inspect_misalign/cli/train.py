"""``inspect-misalign train``: train a model against its caught attacks and register the result.

Its options are the fields of :class:`~inspect_misalign.training.TrainAgainstSpec`, made by
:mod:`._options`: defaults and help live in the dataclass.
"""

from __future__ import annotations

from typing import Any

import click

from inspect_misalign.cli._options import dataclass_options, from_options
from inspect_misalign.training import TrainAgainstSpec, train_against


@click.command("train")
@dataclass_options(TrainAgainstSpec)
def command(**options: Any) -> None:
    """LoRA-train MODEL against its caught attacks (with optional defenses) and register the result."""
    train_against(from_options(TrainAgainstSpec, options), echo=click.echo)
