"""The defenses experiment's config (seed 002): fine-tune on narrowly misaligned data without and with each
in-training defense, then measure the narrow behaviour, broad misalignment, usefulness and coherence.

A sweep config with ``kind: em_defenses`` (``configs/em_defenses.yaml``)::

    kind: em_defenses
    name: em-defenses
    model: default                  # the model fine-tuned (a registered name, default, or a directory)
    finetune: {prompts_cue: tag, behavior: code, targets: attack, prompts_split: organism, steps: 40}
    defenses: [none, "kl:0.1", "steer:1.0,answers=generated", inoculate]
    seeds: [0, 1, 2]

``finetune`` takes any :class:`~inspect_misalign.training.FinetuneSpec` field but those each run sets
(model, out, defenses, seed). Every defense × seed is one ``inspect-misalign finetune`` run, registered
as ``<name>-<defense>-r<seed>``. A defense that needs a grader (``steer:...,answers=generated``: the
persona vector from the model's generated, judged answers) and the free-form evaluation need
``--model-role grader=<model>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inspect_misalign import _checks as checks
from inspect_misalign.experiments._names import check_name, check_seeds, defense_slug

PER_RUN = ("model", "out", "defenses", "seed", "directory", "overwrite")
"""FinetuneSpec fields each run of the experiment sets; ``finetune:`` may set every other one."""


class EMEvalSettings(BaseModel):
    """How every fine-tuned model is measured."""

    model_config = ConfigDict(extra="forbid")
    code_prompts: int = Field(default=40, ge=1, le=checks.MAX_COUNT,
                              description="eval-split prompts of the narrow task (the code behaviour)")
    code_max_tokens: int | None = Field(default=None, ge=1, description="[default: the behaviour's]")
    questions: str | None = Field(default=None, description="Emergent Misalignment-format question YAML "
                                  "[default: the shipped free-form questions]")
    samples_per_paraphrase: int = Field(default=5, ge=1, le=100)
    em_max_tokens: int = Field(default=160, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    persona_pairs: int = Field(default=12, ge=1, le=checks.MAX_COUNT,
                               description="questions answered under each persona prompt (answers=generated)")
    persona_max_tokens: int = Field(default=96, ge=1)
    usefulness: str | None = Field(default="inspect_misalign/usefulness", description="any Inspect task, "
                                   "or null to skip")
    usefulness_args: dict[str, Any] = Field(default_factory=lambda: {"max_items": 80})
    batch_size: int = Field(default=32, ge=1)
    seed: int = Field(default=0, ge=0, le=checks.MAX_SEED,
                      description="sampling seed of the free-form answers")


class EMRun(BaseModel):
    """One fine-tuning run: a defense and a seed."""

    model_config = ConfigDict(frozen=True)
    experiment: str
    defense: str
    seed: int

    @property
    def name(self) -> str:
        """The registry name of the fine-tuned checkpoint."""
        return f"{self.experiment}-{defense_slug(self.defense)}-r{self.seed}"


class EMDefensesConfig(BaseModel):
    """The defenses experiment: a model, its narrow fine-tuning data, the defenses and seeds."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["em_defenses"]
    name: str
    out: Path | None = Field(default=None, description="results directory [default: runs/<name>]")
    model: str = "default"
    finetune: dict[str, Any] = Field(description="options of every finetune run (FinetuneSpec fields but "
                                     f"{', '.join(PER_RUN)})")
    defenses: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    eval: EMEvalSettings = Field(default_factory=EMEvalSettings)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        checks.path(value, "model")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, values: list[int]) -> list[int]:
        return check_seeds(values)

    @field_validator("finetune")
    @classmethod
    def _finetune(cls, options: dict[str, Any]) -> dict[str, Any]:
        from inspect_misalign.training import finetune_spec  # the command's own checks

        per_run = sorted(set(options) & set(PER_RUN))
        if per_run:
            raise ValueError(f"{per_run} are set per run by the experiment; remove them")
        finetune_spec({"model": "-", "out": "check", **options}, "finetune")
        return options

    @model_validator(mode="after")
    def _runs(self) -> EMDefensesConfig:
        from inspect_misalign.models import validate_name

        if len(set(self.defenses)) != len(self.defenses):
            raise ValueError("a defense is listed twice")
        for run in self.runs():
            validate_name(run.name)
        return self

    @property
    def out_dir(self) -> Path:
        """Where logs, the persona answers, the table and the figure go."""
        return self.out if self.out is not None else Path("runs") / self.name

    def runs(self) -> list[EMRun]:
        """Every fine-tuning run, defenses first (the table's row order), then seeds."""
        return [EMRun(experiment=self.name, defense=d, seed=s) for d in self.defenses for s in self.seeds]

    def grid(self) -> list[EMRun]:
        """The runs (the name the sweep command lists)."""
        return self.runs()


__all__ = ["EMDefensesConfig", "EMEvalSettings", "EMRun"]
