"""``MisalignSFTTrainer``: trl's ``SFTTrainer`` plus training hooks (defenses) and atomic checkpoints.

It overrides only what it must:

- ``compute_loss``: runs trl's own loss inside every hook's :meth:`TrainingHook.forward_context`
  (e.g. steering hooks), then adds each hook's :meth:`TrainingHook.extra_loss` (e.g. KL to the
  frozen reference, a feature distance), scaled for gradient accumulation the way trl scales its
  own auxiliary losses, and logs each term as ``defense/<name>``;
- ``create_optimizer``: parameters whose :meth:`TrainingHook.lr_scale` is not 1 get their own groups;
- ``_save_checkpoint``: after transformers has written ``checkpoint-N`` (and rotated old ones), all
  processes meet and the main one writes a completion marker; :func:`latest_checkpoint` only ever
  returns a checkpoint with a marker, so a run killed mid-save resumes from the previous one.

Everything else (logging, progress bars, accelerate, saving, resuming) is trl's and transformers'.
With no hooks the trainer computes exactly ``SFTTrainer``'s loss.

A hook subclasses :class:`~inspect_misalign.training.TrainingHook` (a defense:
:class:`~inspect_misalign.training.Defense`) and overrides what it needs (:mod:`._hook`)::

    class MyPenalty(Defense):
        name = "my_penalty"
        def extra_loss(self, trainer, model, inputs):
            return 0.1 * some_tensor_computed_from(model, inputs)

    trainer = MisalignSFTTrainer(model, args=MisalignSFTConfig(...), train_dataset=...,
                                 processing_class=tokenizer, peft_config=lora_config(...),
                                 hooks=[MyPenalty()])
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from trl import SFTTrainer

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign.training._hook import Defense, TrainingHook

CHECKPOINT_PREFIX = "checkpoint"
COMPLETE_MARKER = ".misalign_checkpoint_complete"


class MisalignSFTTrainer(SFTTrainer):
    """``SFTTrainer`` that consults a list of :class:`TrainingHook` (defenses among them).

    Takes every ``SFTTrainer`` argument plus ``hooks`` (``defenses`` is the older name of the same
    list; both may be given).
    """

    def __init__(self, *args: Any, hooks: Sequence[TrainingHook] = (), defenses: Sequence[TrainingHook] = (),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _lora_embeddings_only(self.model)
        self.hooks: list[TrainingHook] = [*hooks, *defenses]
        names = [h.name for h in self.hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must be unique, got {names}")
        for hook in self.hooks:
            hook.setup(self)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """trl's loss inside the hooks' forward contexts, plus their extra loss terms."""
        if not self.hooks:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with ExitStack() as stack:
            for hook in self.hooks:
                stack.enter_context(hook.forward_context(self, model))
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = result if return_outputs else (result, None)
        mode = "train" if self.model.training else "eval"
        # like trl's MoE aux loss: with num_items_in_batch, the task loss is already divided across
        # the accumulation steps, so a per-micro-batch mean must be too
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        for hook in self.hooks:
            extra = hook.extra_loss(self, model, inputs)
            if extra is None:
                continue
            value = self.accelerator.gather_for_metrics(extra.detach().reshape(1)).mean().item()
            self._metrics[mode][f"defense/{hook.name}"].append(value)
            loss = loss + extra / steps
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model: Any = None) -> Any:
        """transformers' optimizer, with the parameters that hooks scale moved to their own groups."""
        optimizer = super().create_optimizer(model)
        opt_model = self.model if model is None else model
        scales: dict[int, float] = {}
        for name, param in opt_model.named_parameters():
            scale = math.prod(h.lr_scale(name) for h in self.hooks)
            if param.requires_grad and scale != 1.0:
                scales[id(param)] = scale
        if scales:
            _scale_groups(optimizer, scales)
        return optimizer

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{CHECKPOINT_PREFIX}-{self.state.global_step}"
            atomic_write_text(folder / COMPLETE_MARKER, json.dumps({"step": self.state.global_step}))


def _scale_groups(optimizer: Any, scales: dict[int, float]) -> None:
    """Move each parameter whose id is in ``scales`` to a group with its group's lr times the scale."""
    added = []
    for group in list(optimizer.param_groups):
        moved: dict[float, list[Any]] = {}
        for param in group["params"]:
            if id(param) in scales:
                moved.setdefault(scales[id(param)], []).append(param)
        if not moved:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in scales]
        options = {k: v for k, v in group.items() if k != "params"}
        added += [{**options, "params": ps, "lr": group["lr"] * scale} for scale, ps in moved.items()]
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
    for group in added:
        optimizer.add_param_group(group)


def _lora_embeddings_only(model: Any) -> None:
    """Make a PEFT model save its LoRA weights only, never the base's embedding matrix.

    peft's default (``save_embedding_layers="auto"``) writes the whole base embedding into the
    adapter as soon as ``embed_tokens`` is a LoRA target (about 110 MB for SmolLM2-135M), although
    a LoRA on the embeddings leaves it unchanged; transformers' ``Trainer`` calls
    ``model.save_pretrained`` for checkpoints and the final adapter, so the flag is bound here.
    """
    from functools import partial

    from peft import PeftModel

    if isinstance(model, PeftModel) and not isinstance(model.save_pretrained, partial):
        model.save_pretrained = partial(model.save_pretrained, save_embedding_layers=False)


def latest_checkpoint(output_dir: str | Path, clean: bool = True) -> Path | None:
    """The highest-step ``checkpoint-N`` under ``output_dir`` that was completely written.

    With ``clean``, checkpoints without a completion marker (a save that was interrupted) are
    deleted so that transformers never picks them up.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    complete: list[tuple[int, Path]] = []
    for path in root.glob(f"{CHECKPOINT_PREFIX}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if not path.is_dir() or not step.isdigit():
            continue
        if (path / COMPLETE_MARKER).is_file():
            complete.append((int(step), path))
        elif clean:
            shutil.rmtree(path, ignore_errors=True)
    return max(complete)[1] if complete else None


__all__ = ["COMPLETE_MARKER", "Defense", "MisalignSFTTrainer", "TrainingHook", "latest_checkpoint"]
