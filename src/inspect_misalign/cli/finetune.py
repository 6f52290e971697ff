"""``inspect-misalign finetune``: LoRA-train a model on chat data or rendered base prompts and register it.

Its options are the fields of :class:`~inspect_misalign.training.FinetuneSpec`, made by
:mod:`._options`: defaults and help live in the dataclass.
"""

from __future__ import annotations

from typing import Any

import click

from inspect_misalign.cli._options import dataclass_options, from_options
from inspect_misalign.training import FinetuneSpec, finetune


@click.command("finetune")
@dataclass_options(FinetuneSpec)
def command(**options: Any) -> None:
    """LoRA-train MODEL on a chat JSONL (--data) or on rendered base prompts (--prompts-cue) and register
    the result (the controls and relearning of training against caught attacks)."""
    finetune(from_options(FinetuneSpec, options), echo=click.echo)
