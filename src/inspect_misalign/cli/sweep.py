"""``inspect-misalign sweep``: run (or resume) a sweep config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("sweep")
@click.argument("config")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Results directory [default: the config's out, else runs/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate the config and list the grid; run nothing.")
def command(config: str, out: Path | None, dry_run: bool) -> None:
    """Run the sweep in CONFIG (a YAML file or a shipped name); a re-run resumes and skips finished work.

    Shipped configs: main_curve, transfer, organism_steps, cot, defenses, demo.
    """
    from inspect_misalign.experiments import load_config, preflight, run_sweep

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
