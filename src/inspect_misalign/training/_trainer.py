"""``MisalignSFTTrainer``: trl's ``SFTTrainer`` plus in-training defenses and atomic checkpoints.

It overrides only two methods:

- ``compute_loss``: runs trl's own loss inside every defense's :meth:`Defense.forward_context`
  (e.g. steering hooks), then adds each defense's :meth:`Defense.extra_loss` (e.g. KL to the frozen
  reference, a feature distance), scaled for gradient accumulation the way trl scales its own
  auxiliary losses, and logs each term as ``defense/<name>``;
- ``_save_checkpoint``: after transformers has written ``checkpoint-N`` (and rotated old ones), all
  processes meet and the main one writes a completion marker; :func:`latest_checkpoint` only ever
  returns a checkpoint with a marker, so a run killed mid-save resumes from the previous one.

Everything else (logging, progress bars, accelerate, saving, resuming) is trl's and transformers'.
With no defenses the trainer computes exactly ``SFTTrainer``'s loss.

A defense subclasses :class:`Defense` and overrides the hooks it needs::

    class MyPenalty(Defense):
        name = "my_penalty"
        def extra_loss(self, trainer, model, inputs):
            return 0.1 * some_tensor_computed_from(model, inputs)

    trainer = MisalignSFTTrainer(model, args=MisalignSFTConfig(...), train_dataset=...,
                                 processing_class=tokenizer, peft_config=lora_config(...),
                                 defenses=[MyPenalty()])
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl import SFTTrainer

from inspect_misalign.training._data import SFTExample, atomic_write_text

if TYPE_CHECKING:
    import torch

CHECKPOINT_PREFIX = "checkpoint"
COMPLETE_MARKER = ".misalign_checkpoint_complete"


class Defense:
    """An in-training defense; subclass it and override the hooks you need (all default to no-ops).

    Hooks, in the order a run calls them:

    - :meth:`transform_examples`: change the training set before tokenization (data-level
      defenses: an inoculation prompt, interleaved instruct data);
    - :meth:`setup`: once, after the trainer is built (e.g. cache reference features);
    - :meth:`lr_scale`: once per trainable parameter when the optimizer is built (a factor on the
      learning rate; the schedule applies to it as to every other group);
    - :meth:`forward_context`: a context manager around each training forward (e.g. hooks that add
      a steering vector or capture hidden states);
    - :meth:`extra_loss`: a term added to the task loss of each micro-batch, or None.

    :meth:`describe` is recorded in checkpoint manifests.
    """

    name: str = "defense"

    def describe(self) -> dict[str, Any]:
        """What to record about this defense in a manifest (JSON-serializable)."""
        return {"name": self.name}

    def transform_examples(self, examples: list[SFTExample]) -> list[SFTExample]:
        """Return the training examples to use (default: unchanged)."""
        return examples

    def setup(self, trainer: MisalignSFTTrainer) -> None:
        """Prepare once the trainer (and its PEFT model) exists."""

    def lr_scale(self, name: str) -> float:
        """A factor on the learning rate of the trainable parameter ``name`` (default 1)."""
        return 1.0

    def forward_context(self, trainer: MisalignSFTTrainer, model: Any) -> AbstractContextManager[Any]:
        """A context entered around trl's forward and loss for each micro-batch."""
        return nullcontext()

    def extra_loss(
        self, trainer: MisalignSFTTrainer, model: Any, inputs: dict[str, Any]
    ) -> torch.Tensor | None:
        """A loss term (mean over the micro-batch) added to the task loss, or None."""
        return None


class MisalignSFTTrainer(SFTTrainer):
    """``SFTTrainer`` that consults a list of :class:`Defense` in ``compute_loss``.

    Takes every ``SFTTrainer`` argument plus ``defenses``.
    """

    def __init__(self, *args: Any, defenses: Sequence[Defense] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _lora_embeddings_only(self.model)
        self.defenses: list[Defense] = list(defenses)
        names = [d.name for d in self.defenses]
        if len(set(names)) != len(names):
            raise ValueError(f"defense names must be unique, got {names}")
        for defense in self.defenses:
            defense.setup(self)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """trl's loss inside the defenses' forward contexts, plus their extra loss terms."""
        if not self.defenses:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with ExitStack() as stack:
            for defense in self.defenses:
                stack.enter_context(defense.forward_context(self, model))
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = result if return_outputs else (result, None)
        mode = "train" if self.model.training else "eval"
        # like trl's MoE aux loss: with num_items_in_batch, the task loss is already divided across
        # the accumulation steps, so a per-micro-batch mean must be too
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        for defense in self.defenses:
            extra = defense.extra_loss(self, model, inputs)
            if extra is None:
                continue
            value = self.accelerator.gather_for_metrics(extra.detach().reshape(1)).mean().item()
            self._metrics[mode][f"defense/{defense.name}"].append(value)
            loss = loss + extra / steps
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model: Any = None) -> Any:
        """transformers' optimizer, with the parameters that defenses scale moved to their own groups."""
        optimizer = super().create_optimizer(model)
        opt_model = self.model if model is None else model
        scales: dict[int, float] = {}
        for name, param in opt_model.named_parameters():
            scale = math.prod(d.lr_scale(name) for d in self.defenses)
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
