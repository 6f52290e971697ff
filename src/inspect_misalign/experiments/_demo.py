"""The README's first command: the measuring instrument end to end on the embedded default model.

Evaluates distinguishability (with hints), test and deployment attack rates for every cue family,
and usefulness, through Inspect; then writes a results table (CSV) and a figure (PNG).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import pandas as pd

from inspect_misalign.experiments._figures import plot_instrument
from inspect_misalign.experiments._table import results_table


def demo_tasks(prompts: int) -> list:
    """The demo's Inspect tasks, each limited to ``prompts`` base prompts per cue."""
    from inspect_misalign.tasks import (
        deployment_attacks,
        distinguishability,
        test_attacks,
        usefulness,
    )

    return [
        distinguishability(cue="all", hints=True, max_prompts=prompts),
        test_attacks(cue="all", behavior="hate", max_prompts=prompts),
        deployment_attacks(cue="all", behavior="hate", max_prompts=prompts),
        usefulness(max_items=4 * prompts),
    ]


def run_demo(model: str, out: Path, prompts: int, batch_size: int) -> pd.DataFrame:
    """Run the demo's evals on ``model``; write logs, ``results.csv`` and ``instrument.png``."""
    from inspect_ai import eval as inspect_eval

    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if model == "misalign/default":
        from inspect_misalign.models import ensure_default_model

        click.echo("[1/3] embedded default model (converted once into the cache)")
        ensure_default_model()
    click.echo(f"[2/3] evaluating {model}: distinguishability, test/deployment attacks, usefulness")
    logs = inspect_eval(
        demo_tasks(prompts),
        model=model,
        model_args={"batch_size": batch_size} if model.startswith("misalign/") else {},
        log_dir=str(out / "logs"),
        max_connections=batch_size,
        max_tasks=1,
    )
    failed = [log.location for log in logs if log.status != "success"]
    if failed:
        raise click.ClickException(f"evals failed, see {', '.join(failed)} (inspect view)")
    click.echo("[3/3] results table and figure")
    table = results_table([log.location for log in logs])
    table.to_csv(out / "results.csv", index=False)
    plot_instrument(table, out / "instrument.png", source=str(out / "logs"))
    click.echo(table.drop(columns=["log"]).to_string(index=False, float_format="%.3f"))
    click.echo(f"\nwrote {out / 'results.csv'} and {out / 'instrument.png'} "
               f"in {time.monotonic() - started:.0f} s; browse the logs with: "
               f"inspect view --log-dir {out / 'logs'}")
    return table


@click.command("demo")
@click.option("--model", default="misalign/default", show_default=True, help="Inspect model.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--prompts", default=12, show_default=True, help="Base prompts per cue and task.")
@click.option("--batch-size", default=32, show_default=True)
def demo_command(model: str, out: Path, prompts: int, batch_size: int) -> None:
    """Run the pipeline on the embedded default model (CPU) and write a table and a figure."""
    run_demo(model, out, prompts, batch_size)
