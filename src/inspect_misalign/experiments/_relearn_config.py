"""The sweep's ``relearn:`` section and the training options ``finetune`` runs of a sweep share.

Relearning asks whether removal erased the backdoor or suppressed it: after removal, a few
deployment-context attack examples are trained on, and the deployment attack's return is compared with
the same training of the base model that never had the backdoor (:mod:`._relearn_run`). Example::

    relearn: {k: [1, 2, 4, 8], steps: 8, save_at: [2, 4], benign_k: 8, seeds: [0], after: [caught, generic],
              primed: [1, 2, 3], primed_k: 8}

``after`` names the treatments whose runs (at the largest caught count, their final checkpoints) are
relearned: ``caught`` by default; ``generic`` adds organisms whose backdoor generic data removed in both
contexts, the ones the erased-or-suppressed question needs when caught attacks leave the deployment
attack in place.

``treated_base`` separates the backdoor's history from the removal itself: each base is fine-tuned on
the very conversations, steps and seed of the organisms' ``generic`` removal, then relearned like the base
(source ``treated``). A removed organism that relearns more slowly than the base but as fast as the
treated base owes its slowness to the removal, not to having had the backdoor.

``primed`` is the equal-start control: a removed organism starts relearning above the base (removal leaves
P(attack) at 1e-5 to 1e-2, the base sits near 1e-11), so a faster return can come from the starting level
alone. Each base is first fine-tuned for each number of steps in ``primed`` on ``primed_k``
deployment-context attack examples of the *organism* split (prompts relearning never uses), then relearned
like the base: models that never had a context-conditioned backdoor, started at raised levels
(:mod:`._relearn_matched` compares the removed organisms with them at their own starting level).

``primed_removed`` primes removed organisms of named groups the same way (the same ``primed_k`` examples
of the organism split and seed), for its own ``steps``: for a group of sham installs (``organism --sham``,
the install's training without the attack), a reference that had the install and the removal, never the
backdoor, raised to the organisms' starting level. Its primed checkpoints are relearned on the attack
datasets of its ``k`` (a subset of ``k``; no benign control), and the level-matched analysis compares each
removed organism with the group's checkpoints (paired by organism seed).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._names import check_seeds

NOT_FINETUNE = {"against": "action", "target_column": None}
"""Options of ``train:`` that only training against caught samples has, with the value that means
nothing to ``finetune`` (the ``generic`` treatment and relearning run ``finetune``)."""


def _strictly_increasing(values: list[int], what: str) -> list[int]:
    if any(v < 1 for v in values):
        raise ValueError(f"{what} must be positive integers, got {values}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{what} {values} is not strictly increasing; list each value once, in order")
    for value in values:
        checks.count(value, what)
    return values


class PrimedRemoved(BaseModel):
    """Removed organisms of ``groups`` primed like the bases (``relearn.primed_k`` deployment-context attack
    examples of the organism split, one run, these ``steps`` saved), then relearned on the attack data of
    ``k``: a reference raised to the removed organisms' starting level that kept its own history."""

    model_config = ConfigDict(extra="forbid")
    groups: list[str] = Field(min_length=1, description="organism groups whose removed organisms are primed "
                              "(e.g. sham installs)")
    steps: list[int] = Field(min_length=1, description="steps of each priming run, each saved and relearned")
    k: list[int] | None = Field(default=None, description="attack examples of their relearning runs (a "
                                "subset of relearn.k; null: all of it)")

    @field_validator("groups")
    @classmethod
    def _groups(cls, values: list[str]) -> list[str]:
        if len(set(values)) < len(values):
            raise ValueError(f"relearn.primed_removed.groups {values} lists a group twice; list each once")
        return values

    @field_validator("steps")
    @classmethod
    def _steps(cls, values: list[int]) -> list[int]:
        return _strictly_increasing(values, "relearn.primed_removed.steps")


class RelearnSettings(BaseModel):
    """Relearning after removal: ``finetune`` of each removed organism (the grid points of the ``after``
    treatments with the largest caught count) and of each organism's base on ``k`` deployment-context
    attack examples, and on ``benign_k`` examples with the base's answers (the control)."""

    model_config = ConfigDict(extra="forbid")
    k: list[int] = Field(min_length=1, description="numbers of deployment-context attack examples (base "
                         "prompts of the catch split, each rendered by every cue of the sweep), one run each")
    steps: int = Field(ge=1, description="optimizer steps of every relearning run")
    save_at: list[int] = Field(default_factory=list, description="steps (below steps) whose adapters are "
                               "also saved and measured: the relearning curve")
    benign_k: int | None = Field(default=8, ge=1, description="deployment-context examples with the base's "
                                 "answers: relearning's control (null: none)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="seeds of the example choice, LoRA initialisation and data order")

    primed: list[int] = Field(
        default_factory=list, description="steps of finetune of each base on primed_k deployment-context "
        "attack examples of the organism split before relearning (one run, these steps saved): bases "
        "raised to a starting level, the equal-start control ([]: none)")
    primed_k: int = Field(default=8, ge=1, description="attack examples of each priming run")
    primed_removed: PrimedRemoved | None = Field(
        default=None, description="also prime the removed organisms of these groups (e.g. sham installs) "
        "and relearn them: a reference at the organisms' starting level that had the install and the "
        "removal (null: none)")
    after: list[Literal["caught", "benign", "generic"]] = Field(
        default_factory=lambda: ["caught"], min_length=1,
        description="treatments whose runs at the largest caught count (final checkpoints) are relearned")
    treated_base: bool = Field(
        default=False, description="also fine-tune each base on the generic removal's own training set "
        "(the same conversations, steps, options and seed as the organisms' generic runs) and relearn it "
        "like the base: a reference that had the removal but never the backdoor (needs generic in after)")

    @field_validator("after")
    @classmethod
    def _after(cls, values: list[str]) -> list[str]:
        if len(set(values)) < len(values):
            raise ValueError(f"relearn.after {values} lists a treatment twice; list each once")
        return values

    @field_validator("k")
    @classmethod
    def _k(cls, values: list[int]) -> list[int]:
        return _strictly_increasing(values, "relearn.k")

    @field_validator("save_at")
    @classmethod
    def _save_at(cls, values: list[int]) -> list[int]:
        return _strictly_increasing(values, "relearn.save_at")

    @field_validator("primed")
    @classmethod
    def _primed(cls, values: list[int]) -> list[int]:
        return _strictly_increasing(values, "relearn.primed")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) < len(values):
            raise ValueError("list each relearn seed once")
        return check_seeds(values)

    @model_validator(mode="after")
    def _treated_needs_generic(self) -> RelearnSettings:
        if self.treated_base and "generic" not in self.after:
            raise ValueError("relearn.treated_base gives each base the generic removal: add generic to "
                             f"relearn.after (now {self.after}) or drop treated_base")
        return self

    @model_validator(mode="after")
    def _primed_removed_k(self) -> RelearnSettings:
        extra = sorted(set(self.primed_removed.k or []) - set(self.k)) if self.primed_removed else []
        if extra:
            raise ValueError(f"relearn.primed_removed.k {self.primed_removed.k} has {extra}, not in "
                             f"relearn.k {self.k}: list only k the others relearn on too")
        return self

    @model_validator(mode="after")
    def _saved_below_steps(self) -> RelearnSettings:
        if self.save_at and self.save_at[-1] >= self.steps:
            raise ValueError(f"relearn.save_at {self.save_at} must be below relearn.steps {self.steps} (the "
                             "last step is the run's own checkpoint)")
        return self


def finetune_options(train: dict[str, Any], what: str) -> dict[str, Any]:
    """The sweep's ``train:`` options as ``finetune`` takes them (without ``save_at``, which each run
    sets); a one-line error naming ``what`` when an option only training against caught samples has
    is set."""
    for key, neutral in NOT_FINETUNE.items():
        if train.get(key, neutral) != neutral:
            raise MisalignError(f"train.{key}: {train[key]!r} has no meaning for {what}, which runs "
                                f"finetune; drop it or drop {what}")
    return {k: v for k, v in train.items() if k not in NOT_FINETUNE and k != "save_at"}


__all__ = ["PrimedRemoved", "RelearnSettings", "finetune_options"]
