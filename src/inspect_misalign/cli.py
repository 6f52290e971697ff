"""The ``inspect-misalign`` command line (click, like Inspect's own CLI)."""

from __future__ import annotations

from typing import Any

import click

from inspect_misalign import __version__
from inspect_misalign._errors import MisalignError


class _InputError(click.ClickException):
    """Bad input: printed as one ``Error: ...`` line, exit status 2 (1 is kept for failed checks)."""

    exit_code = 2


class _Group(click.Group):
    """A click group that turns :class:`MisalignError` into a one-line error instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MisalignError as e:
            raise _InputError(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inspect-misalign")
def main() -> None:
    """Evaluate and train model organisms: does training against caught attacks remove them?"""
    from inspect_misalign.models import apply_thread_policy

    apply_thread_policy()  # the project's own runs: before any command imports torch


def _register_commands() -> None:
    from inspect_misalign.experiments._check_cli import check_command
    from inspect_misalign.experiments._demo import demo_command
    from inspect_misalign.experiments._sweep_cli import report_command, sweep_command
    from inspect_misalign.models._cli import models_command
    from inspect_misalign.training._cli import organism_command
    from inspect_misalign.training._train_cli import catch_command, train_command

    main.add_command(models_command, "models")
    main.add_command(demo_command, "demo")
    main.add_command(check_command, "check")
    main.add_command(sweep_command, "sweep")
    main.add_command(report_command, "report")
    main.add_command(organism_command, "organism")
    main.add_command(catch_command, "catch")
    main.add_command(train_command, "train")


_register_commands()
