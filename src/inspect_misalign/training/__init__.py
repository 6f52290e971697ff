"""Training: model organisms, training against caught attacks, and the pipeline and trainer they share.

- the config layer: one frozen dataclass per concern, each field with its default, help text and
  checks (:class:`OptimSettings`, the organism's :class:`TrainSettings` and :class:`OrganismSpec`,
  :class:`GateSettings`, :class:`TrainAgainstSpec`); the command line and the sweep YAML are built
  from them;
- the shared pipeline (:mod:`._pipeline`): checks, the base model, the hashed work directory, the
  LoRA run (:func:`train_adapter`), publish-and-register;
- :class:`MisalignSFTConfig` / :class:`MisalignSFTTrainer`: trl's ``SFTConfig`` / ``SFTTrainer``
  with project defaults, :class:`TrainingHook` extensions (:class:`Defense` among them) and atomic
  checkpoints;
- :func:`build_organism`: ``inspect-misalign organism`` (data, training, gate, registration);
- :func:`catch` / :func:`train_against`: ``inspect-misalign catch`` and ``train`` (train a checkpoint
  against its caught attacks), with the defenses of :func:`parse_defense` (``--defense``);
- :func:`finetune` (:class:`FinetuneSpec`): ``inspect-misalign finetune``, LoRA SFT of any registered
  model on chat data or rendered base prompts, through the same run as ``train`` (:mod:`._parent`);
  both save adapters at chosen steps (``--save-at``, :mod:`._steps`).

Importing this package does not import torch (the submodules that train do); it applies the CPU
thread policy first (:func:`inspect_misalign.models.apply_thread_policy`).
"""

from inspect_misalign.models import apply_thread_policy
from inspect_misalign.training._against import TrainAgainstSpec, against_options, train_against
from inspect_misalign.training._catch import CaughtSample, catch, read_caught
from inspect_misalign.training._chat import chat_path
from inspect_misalign.training._data import SFTExample, data_hash, read_examples, to_dataset, write_examples
from inspect_misalign.training._defenses import DEFENSE_FORMAT, defense_names, parse_defense, parse_defenses
from inspect_misalign.training._defenses._persona import fixed_answers as persona_records
from inspect_misalign.training._defenses._persona import keeps as keeps_persona_answer
from inspect_misalign.training._fields import from_mapping, setting
from inspect_misalign.training._finetune import FinetuneSpec, finetune, finetune_spec, render_prompts
from inspect_misalign.training._gate import GateResult, GateSettings, parse_min_gap
from inspect_misalign.training._hook import Defense, TrainingHook
from inspect_misalign.training._organism import (
    OrganismResult,
    OrganismSpec,
    TrainSettings,
    organism_spec,
    plan_examples,
    variant_of,
)
from inspect_misalign.training._organism_build import build_organism
from inspect_misalign.training._pipeline import Workspace, library_versions, load_base
from inspect_misalign.training._settings import LR_SCHEDULERS, OptimSettings
from inspect_misalign.training._steps import parse_save_at, step_name

apply_thread_policy()  # none of the imports above loads torch; the training functions do, later

__all__ = [
    "DEFENSE_FORMAT",
    "LR_SCHEDULERS",
    "CaughtSample",
    "Defense",
    "FinetuneSpec",
    "GateResult",
    "GateSettings",
    "MisalignSFTConfig",
    "MisalignSFTTrainer",
    "OptimSettings",
    "OrganismResult",
    "OrganismSpec",
    "SFTExample",
    "TrainAgainstSpec",
    "TrainSettings",
    "TrainingHook",
    "Workspace",
    "against_options",
    "build_organism",
    "catch",
    "chat_path",
    "data_hash",
    "defense_names",
    "finetune",
    "finetune_spec",
    "from_mapping",
    "keeps_persona_answer",
    "latest_checkpoint",
    "library_versions",
    "load_base",
    "lora_config",
    "organism_spec",
    "parse_defense",
    "parse_defenses",
    "parse_min_gap",
    "parse_save_at",
    "persona_records",
    "plan_examples",
    "read_caught",
    "read_examples",
    "render_prompts",
    "setting",
    "step_name",
    "to_dataset",
    "train_adapter",
    "train_against",
    "variant_of",
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
