"""``OptimSettings``: how an adapter is optimised, the fields every training command shares.

The part of trl's ``SFTConfig`` a command sets, as one frozen dataclass with help text and checks
(:mod:`._fields`). Each command's own config extends it: the organism's
:class:`~inspect_misalign.training.TrainSettings` (other defaults for a from-scratch backdoor, plus
the LoRA shape and cue-token embeddings) and :class:`~inspect_misalign.training.TrainAgainstSpec`.
:meth:`OptimSettings.sft_config` is the one place a :class:`MisalignSFTConfig` is built from them,
and :class:`MisalignSFTConfig` takes its own defaults from here.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspect_misalign._checks import MAX_COUNT
from inspect_misalign._errors import MisalignError
from inspect_misalign.training._fields import check_at_least, check_choice, check_positive, setting

LrScheduler = Literal["constant", "linear", "cosine"]
LR_SCHEDULERS: tuple[str, ...] = typing.get_args(LrScheduler)


@dataclass(frozen=True, kw_only=True)
class OptimSettings:
    """Optimisation settings of a LoRA run (the defaults are those of training against caught attacks)."""

    steps: int | None = setting(None, none_below=1,
                                help="Optimizer steps (0: --epochs passes over the SFT set).")
    epochs: float = setting(1.0, help="Passes over the training set when --steps is not given.")
    batch_size: int = setting(8, help="Examples per optimizer micro-step (and device).")
    grad_accum: int = setting(1, help="Micro-steps per optimizer step.")
    lr: float = setting(2e-4, help="Learning rate (LoRA).")
    lr_scheduler: LrScheduler = setting("constant", help="Learning-rate schedule over the run (transformers' "
                                        "names; no warmup).")
    max_length: int = setting(512, help="Longest training example in tokens (longer ones are truncated).")
    save_steps: int = setting(20, help="Checkpoint every N steps (a rerun of the same command resumes).")

    def __post_init__(self) -> None:
        check_at_least(self, 1, "steps", optional=True)
        check_positive(self, "epochs", high=MAX_COUNT)
        check_positive(self, "lr")
        check_at_least(self, 1, "batch_size", "grad_accum", "max_length", "save_steps")
        check_choice(self, "lr_scheduler", LR_SCHEDULERS)
        if self.steps is not None and self.epochs != 1.0:  # epochs would be silently ignored
            raise MisalignError(
                f"steps ({self.steps}) and epochs ({self.epochs:g}) are both set; steps decides the length, "
                "so give one: steps alone, or epochs with steps unset (--steps 0, or steps: null)"
            )

    def total_steps(self, n_examples: int) -> int:
        """Optimizer steps of the run: ``steps``, else ``epochs`` passes over ``n_examples``."""
        return self.steps or math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum))

    def sft_config(self, output_dir: Path, *, seed: int, progress: bool, sequential: bool = False) -> Any:
        """The :class:`MisalignSFTConfig` of a run with these settings (checkpoints under ``output_dir``);
        ``sequential`` reads the training set in order (paired batches) instead of shuffled."""
        from inspect_misalign.training._config import MisalignSFTConfig

        return MisalignSFTConfig(
            output_dir=str(output_dir),
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum,
            learning_rate=self.lr,
            lr_scheduler_type=self.lr_scheduler,
            max_steps=self.steps if self.steps is not None else -1,
            num_train_epochs=self.epochs,
            max_length=self.max_length,
            save_steps=self.save_steps,
            logging_steps=max(1, min(10, (self.steps or 50) // 10)),
            seed=seed,
            disable_tqdm=not progress,
            train_sampling_strategy="sequential" if sequential else "random",
        )


__all__ = ["LR_SCHEDULERS", "OptimSettings"]
