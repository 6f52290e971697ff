"""The ``inspect-misalign`` command line: one module per command, like Inspect's own ``_cli/``.

Every public module of this package is a command of the same name that defines ``command`` (a click
command); adding a command is adding such a file. Other distributions add commands through the
``inspect_misalign.commands`` entry-point group (:mod:`inspect_misalign._plugins`). Commands are
imported only when they run or when ``--help`` lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import click

from inspect_misalign import __version__
from inspect_misalign._errors import MisalignError
from inspect_misalign._plugins import load_plugin, plugin_names


class _InputError(click.ClickException):
    """Bad input: printed as one ``Error: ...`` line, exit status 2 (1 is kept for failed checks)."""

    exit_code = 2


def builtin_commands() -> list[str]:
    """The names of the commands this package ships (its public modules)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _one_line(error: click.UsageError) -> _InputError:
    """A usage error (an unknown option, a value of the wrong type) as one line naming the help."""
    where = error.ctx.command_path if error.ctx is not None else "inspect-misalign"
    message = " ".join(error.format_message().split())
    return _InputError(f"{message} (`{where} --help` lists the options)")


class _Group(click.Group):
    """The commands of this package and of plugins, loaded on use; a :class:`MisalignError` or a
    usage error becomes a one-line error (exit 2) instead of a traceback or a usage block."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise _one_line(e) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*builtin_commands(), *plugin_names("commands")})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in builtin_commands():
            command = importlib.import_module(f"{__name__}.{cmd_name}").command
        else:
            command = load_plugin("commands", cmd_name)
        if command is not None and not isinstance(command, click.Command):
            raise click.UsageError(f"command {cmd_name!r} is not a click command: {command!r}")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MisalignError as e:
            raise _InputError(" ".join(str(e).splitlines())) from None
        except click.UsageError as e:
            raise _one_line(e) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inspect-misalign")
def main() -> None:
    """Evaluate and train model organisms: does training against caught attacks remove them?"""
    from inspect_misalign.models import apply_thread_policy

    apply_thread_policy()  # the project's own runs: before any command imports torch


__all__ = ["builtin_commands", "main"]
