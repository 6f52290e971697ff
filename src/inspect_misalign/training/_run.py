"""One LoRA training run with resume, and atomic publication of its adapter directory.

:func:`train_adapter` is what every training in the project goes through: it applies the
hooks' data transforms, builds a :class:`MisalignSFTTrainer`, resumes from the latest *complete*
checkpoint under ``config.output_dir`` if there is one, trains, and saves the final adapter into a
temp directory beside ``final_dir`` that then replaces it (``os.replace``). A ``final_dir`` that
exists is a finished run and is returned as is; nothing is ever registered here. With ``save_at``,
:class:`SaveAtSteps` also saves the adapter after each of those steps, the same way, into
``steps_dir/step<k>`` (see :mod:`._steps`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._config import MisalignSFTConfig
from inspect_misalign.training._data import SFTExample, to_dataset
from inspect_misalign.training._hook import TrainingHook
from inspect_misalign.training._trainer import MisalignSFTTrainer, latest_checkpoint


@dataclass(frozen=True)
class TrainOutcome:
    """What a run did: where the adapter is and how training went."""

    adapter_dir: Path
    global_step: int
    train_loss: float | None
    runtime_s: float
    resumed_from: str | None
    reused: bool = False


def train_adapter(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SFTExample],
    config: MisalignSFTConfig,
    peft_config: Any,
    final_dir: Path,
    hooks: Sequence[TrainingHook] = (),
    callbacks: Sequence[Any] = (),
    defenses: Sequence[TrainingHook] = (),
    save_at: Sequence[int] = (),
    steps_dir: Path | None = None,
) -> TrainOutcome:
    """Train a LoRA adapter on ``examples`` (resuming if possible) and publish it at ``final_dir``.

    ``config.seed`` seeds everything before the trainer is built (so the LoRA initialisation is
    reproducible too); ``hooks`` are :class:`TrainingHook` objects (``defenses``, the older name,
    are added to them); ``callbacks`` are transformers ``TrainerCallback`` objects; ``save_at``
    steps are saved to ``steps_dir/step<k>`` (:func:`step_dir`).
    """
    from transformers import set_seed

    final_dir = Path(final_dir)
    if save_at and steps_dir is None:
        raise ValueError("save_at needs a steps_dir")
    if (final_dir / "adapter_config.json").is_file():
        _check_saved(save_at, steps_dir)
        return TrainOutcome(final_dir, 0, None, 0.0, None, reused=True)
    hooks = [*hooks, *defenses]
    data = list(examples)
    for hook in hooks:
        data = hook.transform_examples(data)
    set_seed(config.seed)
    trainer = MisalignSFTTrainer(
        model=model,
        args=config,
        train_dataset=to_dataset(data, tokenizer),
        processing_class=tokenizer,
        peft_config=peft_config,
        hooks=hooks,
        callbacks=[*callbacks, *([SaveAtSteps(save_at, steps_dir)] if save_at and steps_dir else [])] or None,
    )
    resume = latest_checkpoint(config.output_dir, clean=trainer.accelerator.is_main_process)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    save_adapter(trainer, final_dir)
    _check_saved(save_at, steps_dir)
    metrics = result.metrics or {}
    return TrainOutcome(
        adapter_dir=final_dir,
        global_step=int(result.global_step),
        train_loss=float(result.training_loss) if result.training_loss is not None else None,
        runtime_s=float(metrics.get("train_runtime", 0.0)),
        resumed_from=str(resume) if resume else None,
    )


def step_dir(steps_dir: Path, step: int) -> Path:
    """Where the adapter saved after optimizer step ``step`` goes."""
    return Path(steps_dir) / f"step{step}"


class SaveAtSteps(TrainerCallback):
    """Save the model's adapter after each optimizer step in ``steps`` to ``steps_dir/step<k>``,
    atomically (a temp directory beside it, then :func:`publish_dir`); the main process writes."""

    def __init__(self, steps: Sequence[int], steps_dir: Path) -> None:
        self.steps = set(steps)
        self.steps_dir = Path(steps_dir)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """After the optimizer step that made ``state.global_step``: save if it is one of the steps."""
        if state.global_step not in self.steps or not state.is_world_process_zero:
            return
        dest = step_dir(self.steps_dir, state.global_step)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            model.save_pretrained(str(tmp))
            publish_dir(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _check_saved(save_at: Sequence[int], steps_dir: Path | None) -> None:
    """Every saved step is there (a run resumed past a step that is missing cannot make it again)."""
    missing = [k for k in save_at if steps_dir is None or not (step_dir(steps_dir, k) / "adapter_config.json")
               .is_file()]
    if missing:
        raise MisalignError(f"the adapters of saved steps {missing} are missing from {steps_dir}; delete "
                            f"{Path(str(steps_dir)).parent} and run the command again")


def save_adapter(trainer: MisalignSFTTrainer, final_dir: Path) -> None:
    """Save the trainer's adapter into a temp dir beside ``final_dir``, then move it into place."""
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    main = trainer.accelerator.is_main_process
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", dir=final_dir.parent)) if main else None
    try:
        trainer.save_model(str(tmp) if tmp else None)
        trainer.accelerator.wait_for_everyone()
        if tmp is not None:
            publish_dir(tmp, final_dir)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_dir(src: Path, dest: Path) -> None:
    """Move the finished directory ``src`` to ``dest``, replacing any previous ``dest``.

    ``src`` must be on the same filesystem (a sibling temp dir). A previous ``dest`` is first
    renamed aside, so readers see either the old or the new directory, never a mix.
    """
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    try:
        os.replace(src, dest)
    except BaseException:
        if old is not None and not dest.exists():
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def building_dir(dest: Path) -> Iterator[Path]:
    """A temp dir beside ``dest`` to fill in the ``with`` block, then moved to ``dest``
    (:func:`publish_dir`); deleted instead if the block (or the move) fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        publish_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_dir_atomically(src: Path, dest: Path) -> None:
    """Copy directory ``src`` to ``dest`` through a sibling temp dir and :func:`publish_dir`."""
    with building_dir(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
