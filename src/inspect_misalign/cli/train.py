"""``inspect-misalign train``: train a model against its caught attacks and register the result."""

from __future__ import annotations

from pathlib import Path

import click

from inspect_misalign.training import defense_option

DEFAULTS_LR = 2e-4


@click.command("train")
@click.option("--model", required=True, help="Registered name (an organism), default, or a model directory.")
@click.option("--caught", required=True, type=click.Path(path_type=Path),
              help="Caught samples from `inspect-misalign catch`.")
@click.option("--steps", type=int, required=True, help="Optimizer steps.")
@click.option("--out", required=True, help="Registry name of the trained checkpoint.")
@defense_option
@click.option("--against", type=click.Choice(["action", "cot"]), default="action", show_default=True,
              help="action: train toward good answers; cot: make only the scratchpad look innocuous, "
                   "keeping the action.")
@click.option("--target-column", default=None,
              help="Train toward this column of the caught file instead of the base model's answers.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS_LR, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lora-r", type=int, default=None, help="[default: the organism's]")
@click.option("--lora-alpha", type=int, default=None, help="[default: the organism's]")
@click.option("--answer-tokens", type=int, default=None,
              help="New tokens of the base's answers [default: 48 hate, 256 code, 160 persona].")
@click.option("--save-steps", type=int, default=20, show_default=True, help="Checkpoint every N steps.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where the files go [default: <registry home>/trained/<out>].")
@click.option("--overwrite", is_flag=True, help="Replace a checkpoint registered under the same name.")
def command(
    model: str, caught: Path, steps: int, out: str, defenses: tuple[str, ...], against: str,
    target_column: str | None, seed: int, lr: float, batch_size: int, grad_accum: int, lora_r: int | None,
    lora_alpha: int | None, answer_tokens: int | None, save_steps: int, directory: Path | None,
    overwrite: bool,
) -> None:
    """LoRA-train MODEL against its caught attacks (with optional defenses) and register the result."""
    from inspect_misalign.training import TrainAgainstSpec, train_against

    spec = TrainAgainstSpec(
        model=model, caught=caught, steps=steps, out=out, defenses=tuple(defenses), against=against,  # type: ignore[arg-type]
        seed=seed, lr=lr, batch_size=batch_size, grad_accum=grad_accum, lora_r=lora_r, lora_alpha=lora_alpha,
        target_column=target_column, answer_tokens=answer_tokens, save_steps=save_steps, directory=directory,
        overwrite=overwrite,
    )
    train_against(spec, echo=click.echo)
