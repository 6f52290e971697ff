"""``inspect-misalign report``: rebuild a sweep's figures and HTML report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def command(directory: Path) -> None:
    """Rebuild the figures and the self-contained HTML report of a sweep DIRECTORY."""
    from inspect_misalign.experiments import report_dir

    click.echo(f"wrote {report_dir(directory)}")
