"""``inspect-misalign curve``: retained misalignment against distinguishability, over several sweeps."""

from __future__ import annotations

import math
from pathlib import Path

import click


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number in (0, 1], e.g. 0.01", ctx, param)
    return value


@click.command("curve")
@click.argument("sweeps", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--caught", type=click.IntRange(min=1), default=16, show_default=True,
              help="The caught count of the runs each point is made of.")
@click.option("--base-logs", "base_logs", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Inspect logs (files or folders) of distinguishability and context_probe of the base "
                   "on the sweeps' cues: the measured x-axes. Repeatable.")
@click.option("--base-model", default="misalign/default", show_default=True,
              help="The model of those logs.")
@click.option("--threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=0.01,
              show_default=True, callback=_finite, help="The overseer's stop: test P(attack) at most this.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/curve"),
              show_default=True, help="Where curve.csv/.md/.png and the per-organism stops.csv/.md/.png go.")
def command(sweeps: tuple[Path, ...], caught: int, base_logs: tuple[Path, ...], base_model: str,
            threshold: float, out: Path) -> None:
    """Retained deployment P(attack) at the overseer's stopping point against distinguishability (the
    knob's best AUC, the base's prompted and probe AUC), one point per organism group of the SWEEPS
    (their out directories), organism seeds the unit of replication."""
    from inspect_misalign.experiments import curve_markdown, curve_tables, write_curve

    table, stops = curve_tables(list(sweeps), caught, list(base_logs) or None, threshold, base_model)
    source = "inspect-misalign curve " + " ".join(str(s) for s in sweeps) + f" --caught {caught}"
    for path in write_curve(table, out, source, stops):
        click.echo(f"wrote {path}")
    click.echo(curve_markdown(table))
