"""The ``inspect-misalign`` command line (click, like Inspect's own CLI)."""

from __future__ import annotations

import click

from inspect_misalign import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inspect-misalign")
def main() -> None:
    """Evaluate and train model organisms: does training against caught attacks remove them?"""


def _register_commands() -> None:
    from inspect_misalign.experiments._demo import demo_command
    from inspect_misalign.models._cli import models_command

    main.add_command(models_command, "models")
    main.add_command(demo_command, "demo")


_register_commands()
