"""``inspect-misalign demo``: the README's first command (see :mod:`inspect_misalign.experiments`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--config", "config_name", default="demo", show_default=True,
              help="Sweep config to run (a shipped name or a YAML file).")
def command(out: Path, config_name: str) -> None:
    """The whole pipeline on the embedded default model (CPU): organism to report, in minutes."""
    import pandas as pd

    from inspect_misalign.experiments import run_demo

    table = run_demo(out, config_name, echo=click.echo)
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        click.echo("\n" + table.to_string(index=False, float_format="%.3f"))
    click.echo(f"\nreport: {out / 'report.html'}")
