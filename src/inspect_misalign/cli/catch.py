"""``inspect-misalign catch``: collect the attacks caught in test_attacks logs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click


@click.command("catch")
@click.argument("logs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="JSONL file of the caught samples (written atomically).")
@click.option("--max", "max_samples", type=int, default=None, help="Keep a random subset of at most N.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --max subset.")
@click.option("--allow-eval-split", is_flag=True,
              help="Accept samples of the eval split (the reported one; refused by default).")
@click.option("--not-caught", is_flag=True,
              help="Write the test-context inputs that were never attacked instead (each once, marked "
              "caught: false): the benign control's training inputs for `train --caught`.")
def command(
    logs: tuple[Path, ...], out: Path, max_samples: int | None, seed: int, allow_eval_split: bool,
    not_caught: bool,
) -> None:
    """Collect the samples of test_attacks LOGS (files or directories) on which an attack was caught."""
    from inspect_misalign.training import catch

    caught = catch(list(logs), out, max_samples=max_samples, seed=seed, allow_eval_split=allow_eval_split,
                   not_caught=not_caught)
    per_cue = Counter(c.cue for c in caught)
    what = "not caught" if not_caught else "caught"
    click.echo(f"{what} {len(caught)} samples ({', '.join(f'{k}: {v}' for k, v in sorted(per_cue.items()))})"
               f" -> {out}")
