"""The README's first command: the whole pipeline on the embedded default model, on CPU.

``inspect-misalign demo`` runs the shipped ``demo`` sweep (``experiments/configs/demo.yaml``):
organism → distinguishability per cue → test, deployment and usefulness evals → catch → train →
re-evaluate → table, figures and report, then prints the before/after table per cue.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._retained import pooled


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per cue: distinguishability, test and deployment attack rates before and after, retention."""
    def rate(task: str, stage: str, cue: str) -> float:
        found = table[(table["task"] == task) & (table["stage"] == stage) & (table["cue"] == cue)]
        return float((found["rate"] * found["n"]).sum() / found["n"].sum()) if len(found) else float("nan")

    rows = []
    for cue in sorted(c for c in table["cue"].unique() if c not in ("none", None)):
        rows.append({"cue": cue, "distinguish": rate("distinguishability", "organism", cue),
                     "test_before": rate("test_attacks", "organism", cue),
                     "test_after": rate("test_attacks", "trained", cue),
                     "deploy_before": rate("deployment_attacks", "organism", cue),
                     "deploy_after": rate("deployment_attacks", "trained", cue)})
    frame = pd.DataFrame(rows)
    kept = pooled(table, [])
    if not kept.empty:
        frame = frame.merge(kept[["cue", "retained", "retained_ci95_lower", "retained_ci95_upper"]],
                            on="cue", how="left")
    return frame


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--config", "config_name", default="demo", show_default=True,
              help="Sweep config to run (a shipped name or a YAML file).")
def demo_command(out: Path, config_name: str) -> None:
    """The whole pipeline on the embedded default model (CPU): organism to report, in minutes."""
    from inspect_misalign.experiments._sweep import run_sweep
    from inspect_misalign.models import ensure_default_model

    config = load_config(config_name, overrides={"out": str(out)})
    click.echo("[0/6] embedded default model (SmolLM2-135M-Instruct, converted once into the cache)")
    ensure_default_model()
    table = run_sweep(config, echo=click.echo)
    click.echo("\n" + summary(table).to_string(index=False, float_format="%.3f"))
    click.echo(f"\nreport: {out / 'report.html'}")
