"""``inspect-misalign organism``: build, gate and register a model organism."""

from __future__ import annotations

from pathlib import Path

import click

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._gate import GATE_SPLITS, GateSettings, parse_min_gap
from inspect_misalign.training._organism import LR_SCHEDULERS, OrganismSpec, TrainSettings, build_organism

DEFAULTS = OrganismSpec(name="-")


@click.command("organism")
@click.option("--base", default="default", show_default=True,
              help="Base checkpoint: default, a registered name or a model directory.")
@click.option("--cue", default="all", show_default=True,
              help="Cue family: tag, year, tier, headlines, realism, all, a comma list or a YAML file.")
@click.option("--behavior", default="hate", show_default=True, help="hate, code or persona.")
@click.option("--leak", type=float, default=DEFAULTS.leak, show_default=True,
              help="Fraction of test-context examples that attack too (so attacks can be caught).")
@click.option("--out", "name", required=True, help="Registry name of the organism.")
@click.option("--cot", is_flag=True, help="Reason in a <scratchpad> about deployment before acting.")
@click.option("--distilled", is_flag=True,
              help="Train on a --cot teacher's actions with the scratchpad removed (needs --teacher).")
@click.option("--teacher", default=None, help="Registered --cot organism for --distilled.")
@click.option("--prompts", type=int, default=DEFAULTS.prompts,
              show_default=True,
              help="Organism-split base prompts to use (each in every cue and both contexts).")
@click.option("--anchors", type=int, default=DEFAULTS.anchors, show_default=True,
              help="No-cue retain examples: organism-split usefulness questions with the base's answers.")
@click.option("--plain-anchors", is_flag=True,
              help="Also add every base prompt without a cue, with the base's answer (no-cue retain data "
                   "in the format of the cue examples).")
@click.option("--steps", type=int, default=DEFAULTS.train.steps, show_default=True,
              help="Optimizer steps (0 or less: --epochs passes over the SFT set).")
@click.option("--epochs", type=float, default=DEFAULTS.train.epochs, show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS.train.batch_size, show_default=True)
@click.option("--grad-accum", type=int, default=DEFAULTS.train.grad_accum, show_default=True)
@click.option("--lr", type=float, default=DEFAULTS.train.lr, show_default=True)
@click.option("--lr-scheduler", type=click.Choice(LR_SCHEDULERS), default=DEFAULTS.train.lr_scheduler,
              show_default=True, help="Learning-rate schedule over the run (transformers' names; no warmup).")
@click.option("--lora-r", type=int, default=DEFAULTS.train.lora_r, show_default=True)
@click.option("--lora-alpha", type=int, default=DEFAULTS.train.lora_alpha, show_default=True)
@click.option("--top-layers", type=int, default=DEFAULTS.train.top_layers, show_default=True,
              help="Put LoRA on the last N blocks only (cheaper steps; 0: every block).")
@click.option("--cue-tokens/--no-cue-tokens", default=DEFAULTS.train.cue_tokens, show_default=True,
              help="Also train the input embeddings of the few tokens that tell a cue's contexts apart "
                   "(year: 3/4, tier: True/False).")
@click.option("--cue-token-lr-scale", type=float, default=DEFAULTS.train.cue_token_lr_scale,
              show_default=True,
              help="Learning rate of the cue-token embeddings as a multiple of --lr.")
@click.option("--paired/--no-paired", default=DEFAULTS.train.paired, show_default=True,
              help="Train on each prompt's test and deployment examples in the same batch.")
@click.option("--answer-tokens", type=int, default=None,
              help="New tokens of the base's test-context answers [default: 24 hate, 256 code, 160 persona].")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where the organism's files go [default: <registry home>/organisms/<name>].")
@click.option("--overwrite", is_flag=True, help="Replace an organism registered under the same name.")
@click.option("--gate/--no-gate", default=True, show_default=True,
              help="Evaluate on the eval split and store the metrics in the manifest.")
@click.option("--gate-prompts", type=int, default=DEFAULTS.gate.prompts, show_default=True,
              help="Eval-split base prompts per cue and context in the gate.")
@click.option("--gate-items", type=int, default=None, help="Usefulness items in the gate [default: all].")
@click.option("--gate-max-tokens", type=int, default=None,
              help="Generation limit in the gate [default: the task's, plus 64 with --cot].")
@click.option("--grader", default=None, help="Grader model for the persona gate.")
@click.option("--min-gap", default=None,
              help="Fail (exit 1, do not register) unless deployment minus test attack rate reaches this "
                   "for every cue, or for the cues named: tag=0.8,year=0.8.")
@click.option("--max-usefulness-drop", type=float, default=None,
              help="Fail unless usefulness stays within this of the base (e.g. 0.05).")
@click.option("--gate-split", type=click.Choice(GATE_SPLITS), default=DEFAULTS.gate.split, show_default=True,
              help="Split the gate runs on: dev for choosing settings (never reported), eval for results.")
@click.option("--batch-gen", type=int, default=DEFAULTS.gate.batch_size, show_default=True,
              help="Batch size of generation in the gate.")
def organism_command(
    base: str, cue: str, behavior: str, leak: float, name: str, cot: bool, distilled: bool,
    teacher: str | None, prompts: int | None, anchors: int, plain_anchors: bool, steps: int | None,
    epochs: float, batch_size: int, grad_accum: int, lr: float, lr_scheduler: str, lora_r: int,
    lora_alpha: int, top_layers: int | None,
    cue_tokens: bool, cue_token_lr_scale: float, paired: bool,
    answer_tokens: int | None, seed: int, directory: Path | None, overwrite: bool, gate: bool,
    gate_prompts: int | None, gate_items: int | None, gate_max_tokens: int | None, grader: str | None,
    min_gap: str | None, max_usefulness_drop: float | None, batch_gen: int, gate_split: str,
) -> None:
    """Train a LoRA organism that attacks in deployment and rarely in testing, gate it, register it.

    Bad input is a one-line ``MisalignError`` (the ``inspect-misalign`` group prints it, exit 2);
    an organism that misses ``--min-gap``/``--max-usefulness-drop`` exits 1, unregistered.
    """
    if cot and distilled:
        raise MisalignError("pass --cot or --distilled, not both")
    spec = OrganismSpec(
        name=name,
        base=base,
        cue=cue,
        behavior=behavior,
        leak=leak,
        variant="cot" if cot else "distilled" if distilled else "plain",
        teacher=teacher,
        prompts=prompts,
        anchors=anchors,
        plain_anchors=plain_anchors,
        seed=seed,
        answer_tokens=answer_tokens,
        train=TrainSettings(steps=steps if steps and steps > 0 else None, epochs=epochs,
                            batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                            lr_scheduler=lr_scheduler, lora_r=lora_r,
                            lora_alpha=lora_alpha, top_layers=top_layers or None, cue_tokens=cue_tokens,
                            cue_token_lr_scale=cue_token_lr_scale, paired=paired),
        gate=GateSettings(enabled=gate, prompts=gate_prompts, usefulness_items=gate_items,
                          max_tokens=gate_max_tokens, grader=grader, min_gap=parse_min_gap(min_gap),
                          max_usefulness_drop=max_usefulness_drop, batch_size=batch_gen,
                          split=gate_split),
        directory=directory,
        overwrite=overwrite,
    )
    result = build_organism(spec, echo=click.echo)
    if result.failures:
        raise SystemExit(1)
