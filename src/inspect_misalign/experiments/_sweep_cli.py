"""``inspect-misalign sweep`` and ``inspect-misalign report``."""

from __future__ import annotations

from pathlib import Path

import click

from inspect_misalign.experiments._config import builtin_configs, load_config


@click.command("sweep")
@click.argument("config")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Results directory [default: the config's out, else runs/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate the config and list the grid; run nothing.")
def sweep_command(config: str, out: Path | None, dry_run: bool) -> None:
    """Run the sweep in CONFIG (a YAML file or a shipped name); a re-run resumes and skips finished work.

    Shipped configs: main_curve, transfer, organism_steps, cot, demo.
    """
    from inspect_misalign.experiments._sweep import preflight, run_sweep

    sweep = load_config(config, overrides={"out": str(out)} if out else None)
    preflight(sweep)
    grid = sweep.grid()
    click.echo(f"sweep {sweep.name}: {len(sweep.organisms)} organism(s), {len(sweep.cues)} cue(s), "
               f"{len(grid)} training run(s) -> {sweep.out_dir}")
    if dry_run:
        for point in grid:
            click.echo(f"  {point.name}")
        return
    run_sweep(sweep, echo=click.echo)


@click.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report_command(directory: Path) -> None:
    """Rebuild the figures and the self-contained HTML report of a sweep DIRECTORY."""
    from inspect_misalign.experiments._report import report_dir

    click.echo(f"wrote {report_dir(directory)}")


__all__ = ["builtin_configs", "report_command", "sweep_command"]
