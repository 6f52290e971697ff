"""Training: model organisms, and the trainer every training in the project shares.

- :class:`MisalignSFTConfig` / :class:`MisalignSFTTrainer`: trl's ``SFTConfig`` / ``SFTTrainer``
  with project defaults, :class:`TrainingHook` extensions (:class:`Defense` among them) and atomic
  checkpoints;
- :func:`train_adapter`: one resumable LoRA run that publishes its adapter atomically;
- :func:`build_organism`: ``inspect-misalign organism`` (data, training, gate, registration);
- :func:`catch` / :func:`train_against`: ``inspect-misalign catch`` and ``train`` (train a checkpoint
  against its caught attacks), with the defenses of :func:`parse_defense` (``--defense``).

Importing this package does not import torch (the submodules that train do); it applies the CPU
thread policy first (:func:`inspect_misalign.models._threads.apply_thread_policy`).
"""

from inspect_misalign.models import apply_thread_policy
from inspect_misalign.training._against import TrainAgainstSpec, train_against
from inspect_misalign.training._catch import CaughtSample, catch, read_caught
from inspect_misalign.training._data import SFTExample, data_hash, read_examples, to_dataset, write_examples
from inspect_misalign.training._defenses import (
    DEFENSE_FORMAT,
    defense_names,
    defense_option,
    parse_defense,
    parse_defenses,
)
from inspect_misalign.training._gate import GateResult, GateSettings, parse_min_gap
from inspect_misalign.training._hook import Defense, TrainingHook
from inspect_misalign.training._organism import (
    LR_SCHEDULERS,
    OrganismResult,
    OrganismSpec,
    TrainSettings,
    build_organism,
)

apply_thread_policy()  # none of the imports above loads torch; the training functions do, later

__all__ = [
    "DEFENSE_FORMAT",
    "LR_SCHEDULERS",
    "CaughtSample",
    "Defense",
    "GateResult",
    "GateSettings",
    "MisalignSFTConfig",
    "MisalignSFTTrainer",
    "OrganismResult",
    "OrganismSpec",
    "SFTExample",
    "TrainSettings",
    "TrainAgainstSpec",
    "TrainingHook",
    "build_organism",
    "catch",
    "defense_names",
    "defense_option",
    "parse_defense",
    "parse_defenses",
    "parse_min_gap",
    "read_caught",
    "train_against",
    "data_hash",
    "latest_checkpoint",
    "lora_config",
    "read_examples",
    "to_dataset",
    "train_adapter",
    "write_examples",
]


def __getattr__(name: str):  # lazy: these import trl/torch
    if name in {"MisalignSFTTrainer", "latest_checkpoint"}:
        from inspect_misalign.training import _trainer

        return getattr(_trainer, name)
    if name == "MisalignSFTConfig":
        from inspect_misalign.training._config import MisalignSFTConfig

        return MisalignSFTConfig
    if name == "train_adapter":
        from inspect_misalign.training._run import train_adapter

        return train_adapter
    if name == "lora_config":
        from inspect_misalign.training._lora import lora_config

        return lora_config
    raise AttributeError(name)
