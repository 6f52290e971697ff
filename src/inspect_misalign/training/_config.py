"""``MisalignSFTConfig``: trl's ``SFTConfig`` with defaults for this project's small-model LoRA runs.

Only defaults change; every field is trl's/transformers' own, so the config works unchanged with
``accelerate launch`` and with trl's documentation. The project's commands build it from their
settings (:meth:`~inspect_misalign.training.OptimSettings.sft_config`), whose defaults these are.
Differences from ``SFTConfig``:

- ``completion_only_loss=True``: loss on the completion only (the prompt-completion format);
- ``learning_rate=2e-4`` (LoRA) with a ``constant`` schedule: runs are short, and any warmup spends
  its first step at learning rate 0;
- ``gradient_checkpointing=False``: the models are small, and recomputation only costs time;
- ``bf16``: on where CUDA supports it, off elsewhere (on CPUs without bf16 units it is ~50x slower);
- ``use_cpu``: on when there is no CUDA or MPS device;
- ``logging_steps=5``, ``save_steps=20``, ``save_total_limit=2``, ``report_to="none"``;
- ``max_length=512``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from inspect_misalign.training._settings import OptimSettings


def _accelerator_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class MisalignSFTConfig(SFTConfig):
    """``SFTConfig`` with the project's defaults (see the module docstring); all fields are trl's."""

    completion_only_loss: bool | None = field(default=True)
    learning_rate: float = field(default=OptimSettings.lr)
    lr_scheduler_type: str = field(default=OptimSettings.lr_scheduler)
    # None, not False: transformers 5 treats a set `gradient_checkpointing` as the deprecated alias
    # of `activation_checkpointing` and warns; unset, both stay off.
    gradient_checkpointing: bool | None = field(default=None)
    logging_steps: float = field(default=5)
    save_steps: float = field(default=OptimSettings.save_steps)
    save_total_limit: int | None = field(default=2)
    report_to: None | str | list[str] = field(default="none")
    max_length: int | None = field(default=OptimSettings.max_length)

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = bool(_cuda_bf16()) and not self.fp16
        if not self.use_cpu and not _accelerator_available():
            self.use_cpu = True
        super().__post_init__()
