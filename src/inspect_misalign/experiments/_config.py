"""Sweep configuration: a validated YAML grid over organism × cue × caught × steps × defense × seed.

Example (``configs/main_curve.yaml``)::

    name: main-curve
    organisms:
      - name: hate-all                  # a registered checkpoint...
        build: {cue: all, leak: 0.05}   # ...built first (inspect-misalign organism) if missing
    cues: [tag, year, tier, headlines, realism]
    train_on: [each]      # caught samples of each cue alone ("each"), of all cues ("all"), or named cues
    caught: [16]
    steps: [20]
    defenses: [none]
    seeds: [0]

Every grid point trains one checkpoint (``<name>-<organism>-<train_on>-c<caught>-s<steps>-<defense>-r<seed>``)
against caught test-context attacks and re-evaluates it on every cue of ``cues``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError, read_yaml, validation_message
from inspect_misalign.cues import canonical_cue
from inspect_misalign.experiments._em_config import EMDefensesConfig
from inspect_misalign.experiments._names import check_name, check_seeds, defense_slug
from inspect_misalign.experiments._relearn_config import RelearnSettings, finetune_options

CONFIG_DIR = Path(__file__).parent / "configs"


class OrganismEntry(BaseModel):
    """An organism of the sweep: a registered name, optionally built first if it is missing."""

    model_config = ConfigDict(extra="forbid")
    name: str
    build: dict[str, Any] | None = Field(
        default=None, description="organism options (base, cue, behavior, leak, cot, prompts, steps, ...)"
    )
    group: str | None = Field(
        default=None,
        description="organisms built by one recipe with different seeds share a group: retention pools "
        "them and its interval resamples organisms, then prompts [default: the organism alone]",
    )

    @field_validator("name")
    @classmethod
    def _registry_name(cls, value: str) -> str:
        from inspect_misalign.models import validate_name

        validate_name(value)  # a registry name: no path, no newline, not too long
        return value

    @property
    def behavior(self) -> str:
        """The organism's behaviour (from its build options; ``hate`` unless they say otherwise)."""
        return str((self.build or {}).get("behavior", "hate"))


class EvalSettings(BaseModel):
    """How checkpoints are evaluated and attacks are caught."""

    model_config = ConfigDict(extra="forbid")
    split: Literal["eval", "dev", "catch", "organism", "all"] = "eval"
    prompts: int = Field(default=20, ge=1, description="base prompts per cue in each attack eval")
    catch_prompts: int = Field(default=60, ge=1, description="catch-split prompts per cue tested")
    max_tokens: int | None = Field(default=None, ge=1)
    distinguishability: bool = True
    distinguishability_model: Literal["base", "organism"] = Field(
        default="base", description="who is asked: the organism's base (from its registry manifest or "
        "build options) or the organism itself")
    hints: bool = Field(default=False, description="distinguishability with the cue family's hint")
    distinguishability_after: bool = False
    propensity: bool = Field(
        default=True, description="teacher-forced propensity (both contexts) of organisms and trained "
        "checkpoints, before and after (forward passes only)")
    probe: bool = Field(
        default=True, description="context_probe (hidden-state probe AUC) of the models asked to distinguish")
    trigger_probes: list[str] = Field(
        default_factory=list, description="cue families whose trigger probes (variants and look-alikes of "
        "the deployment cue) are run on organisms before and trained checkpoints after")
    epochs: int = Field(
        default=1, ge=1, description="epochs of the attack evals (sampled rates: set temperature)")
    temperature: float | None = Field(
        default=None, ge=0, description="sampling temperature of the attack evals (default: greedy)")
    seed: int = Field(default=0, ge=0, le=checks.MAX_SEED, description="sampling seed of the attack evals")
    catch_epochs: int = Field(
        default=1, ge=1, description="epochs of the catch phase's test_attacks eval (sampled catching: set "
        "catch_temperature); each input counts once, however many of its samples attacked")
    catch_temperature: float | None = Field(
        default=None, ge=0, description="sampling temperature of the catch phase (default: greedy); an "
        "overseer sampling its model in testing catches attacks a greedy eval never shows")
    catch_shown: Literal["any", "test"] = Field(
        default="any", description="which caught attacks training may use: any, or only those on inputs "
        "shown the test rendering (with an overlap level, the control without the test inputs that look "
        "like deployment)")
    usefulness: str | None = Field(
        default="inspect_misalign/usefulness", description="any Inspect task, or null to skip"
    )
    usefulness_args: dict[str, Any] = Field(default_factory=lambda: {"max_items": 80})
    batch_size: int = Field(default=32, ge=1)
    workers: int = Field(default=1, ge=1, le=64, description="processes that evaluate the models of one "
                         "eval set side by side, each a share of the models and of the torch threads")

    @model_validator(mode="after")
    def _epochs_need_sampling(self) -> EvalSettings:
        if self.epochs > 1 and not self.temperature:
            raise ValueError(f"epochs: {self.epochs} repeats identical greedy answers; set temperature > 0 "
                             "(e.g. 1.0) for sampled attack rates, or epochs: 1")
        if self.catch_epochs > 1 and not self.catch_temperature:
            raise ValueError(f"catch_epochs: {self.catch_epochs} repeats identical greedy answers; set "
                             "catch_temperature > 0 (e.g. 1.0) for sampled catching, or catch_epochs: 1")
        return self

    @model_validator(mode="after")
    def _after_needs_organism(self) -> EvalSettings:
        if self.distinguishability_after and self.distinguishability_model == "base":
            raise ValueError("distinguishability_after asks trained checkpoints; it needs "
                             "distinguishability_model: organism (the base does not change in training)")
        return self


class SweepConfig(BaseModel):
    """A sweep: organisms, the cues to measure, and the training grid."""

    model_config = ConfigDict(extra="forbid")
    name: str
    out: Path | None = Field(default=None, description="results directory [default: runs/<name>]")
    organisms: list[OrganismEntry] = Field(min_length=1)
    cues: list[str] = Field(min_length=1)
    train_on: list[str] = Field(default_factory=lambda: ["each"], min_length=1)
    caught: list[int] = Field(min_length=1)
    steps: list[int] = Field(min_length=1)
    defenses: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    treatments: list[Literal["caught", "benign", "generic"]] = Field(
        default_factory=lambda: ["caught"], min_length=1,
        description="caught: train against caught test-context attacks; benign: the control, the same "
        "training on as many test-context inputs of the cue on which the organism did not attack "
        "(catch --not-caught); generic: the same training (finetune) on as many conversations of the "
        "shipped instruction data (instruct.jsonl), no attack and no cue")
    train: dict[str, Any] = Field(
        default_factory=dict, description="options of every training against caught samples: any field of "
        "inspect_misalign.training.TrainAgainstSpec but those each grid point sets (lr, batch_size, "
        "against, ...)")
    eval: EvalSettings = Field(default_factory=EvalSettings)
    relearn: RelearnSettings | None = Field(
        default=None, description="relearning after removal (experiments._relearn_run): finetune the "
        "removed organisms and their bases on k deployment-context attack examples")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("cues", "train_on")
    @classmethod
    def _level_names(cls, values: list[str]) -> list[str]:
        # tag@0.25 -> tag-q25, the family name its samples carry, so train_on groups and figures match
        return [canonical_cue(v) for v in values]

    @field_validator("train")
    @classmethod
    def _train_options(cls, values: dict[str, Any]) -> dict[str, Any]:
        from inspect_misalign.training import against_options  # the training command's own checks

        return against_options(values)

    @field_validator("caught", "steps")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v <= 0 for v in values):
            raise ValueError("every value must be a positive integer")
        for value in values:
            checks.count(value, "a value")  # at most MAX_COUNT
        return values

    @field_validator("treatments")
    @classmethod
    def _treatments_once(cls, values: list[str]) -> list[str]:
        if len(set(values)) < len(values):
            raise ValueError("list each treatment once")
        return values

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, values: list[int]) -> list[int]:
        return check_seeds(values)

    @model_validator(mode="after")
    def _grid_names_register(self) -> SweepConfig:
        from inspect_misalign.models import validate_name

        for point in self.grid():
            validate_name(point.name)  # e.g. too long once sweep, organism and settings are joined
            for _, name in self.saved_steps(point):
                validate_name(name)
        return self

    @model_validator(mode="after")
    def _saved_steps_fit(self) -> SweepConfig:
        saved = self.save_at()
        if saved and saved[-1] > min(self.steps):
            raise ValueError(f"train.save_at {list(saved)} goes past steps {min(self.steps)}; save at steps "
                             "up to the smallest of steps")
        return self

    def save_at(self) -> tuple[int, ...]:
        """The steps at which every training run saves its adapter (``train: {save_at: [...]}``)."""
        from inspect_misalign.training import parse_save_at

        return parse_save_at(self.train.get("save_at"), "train.save_at")

    def saved_steps(self, point: GridPoint) -> list[tuple[int, str]]:
        """(step, registry name) of the adapters a grid point saves before its last step, each
        ``<point>-step<k>``; its last step is the point's own checkpoint."""
        from inspect_misalign.training import step_name

        return [(k, step_name(point.name, k)) for k in self.save_at() if k < point.steps]

    @model_validator(mode="after")
    def _out_is_a_directory(self) -> SweepConfig:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ValueError(f"out {self.out_dir} is a file; give a directory for the sweep's results")
        return self

    @model_validator(mode="after")
    def _train_on_known(self) -> SweepConfig:
        names = self.cue_family_names()
        unknown = [t for t in self.train_on
                   if t not in ("each", "all") and t not in names and t not in names.values()]
        if unknown:
            raise ValueError(f"train_on {unknown[0]!r} is not 'each', 'all' or one of cues {self.cues}")
        return self

    @model_validator(mode="after")
    def _groups_share_a_behavior(self) -> SweepConfig:
        behaviors: dict[str, set[str]] = {}
        for o in self.organisms:
            behaviors.setdefault(o.group or o.name, set()).add(o.behavior)
        mixed = [g for g, found in behaviors.items() if len(found) > 1]
        if mixed:
            raise ValueError(f"organism group {mixed[0]!r} mixes behaviours {sorted(behaviors[mixed[0]])}; "
                             "a group holds replicates of one recipe")
        return self

    @model_validator(mode="after")
    def _finetune_runs_fit(self) -> SweepConfig:
        if "generic" in self.treatments:
            finetune_options(self.train, "treatments: generic")
        if self.relearn is None:
            return self
        finetune_options(self.train, "relearn")
        missing = [t for t in self.relearn.after if t not in self.treatments]
        if missing:
            raise ValueError(f"relearn retrains the organisms removed by {missing[0]}: it needs the "
                             f"{missing[0]} treatment in treatments")
        groups = {o.group or o.name for o in self.organisms}
        unknown = [g for g in (self.relearn.primed_removed.groups if self.relearn.primed_removed else [])
                   if g not in groups]
        if unknown:
            raise ValueError(f"relearn.primed_removed.groups: {unknown[0]!r} is not a group of the sweep's "
                             f"organisms ({sorted(groups)}); name one of them")
        if not self.eval.propensity:
            raise ValueError("relearn is measured by the teacher-forced propensity; set "
                             "eval.propensity: true")
        return self

    @property
    def out_dir(self) -> Path:
        """Where logs, caught sets, the table, figures and the report go."""
        return self.out if self.out is not None else Path("runs") / self.name

    def cue_family_names(self) -> dict[str, str]:
        """Each entry of ``cues`` (a built-in name or a cue YAML path) -> its family's ``name:``, which
        is what caught samples, grid names and tables use (never the path)."""
        from inspect_misalign.cues import load_cue

        return {entry: load_cue(entry).name for entry in self.cues}

    def train_groups(self) -> list[str]:
        """The cue sets trained on, by family name: ``each`` expands to one per cue; ``all`` pools every
        cue."""
        names = self.cue_family_names()
        groups: list[str] = []
        for entry in self.train_on:
            for group in (list(names.values()) if entry == "each" else [names.get(entry, entry)]):
                if group not in groups:
                    groups.append(group)
        return groups

    def grid(self) -> list[GridPoint]:
        """Every training run of the sweep, in a stable order."""
        points = []
        for organism, group, treatment, caught, steps, defense, seed in itertools.product(
            self.organisms, self.train_groups(), self.treatments, self.caught, self.steps, self.defenses,
            self.seeds,
        ):
            points.append(GridPoint(sweep=self.name, organism=organism.name, train_on=group,
                                    caught=caught, steps=steps, defense=defense, seed=seed,
                                    treatment=treatment))
        return points


class GridPoint(BaseModel):
    """One training run of a sweep."""

    model_config = ConfigDict(frozen=True)
    sweep: str
    organism: str
    train_on: str
    caught: int
    steps: int
    defense: str
    seed: int
    treatment: str = "caught"

    @property
    def name(self) -> str:
        """The registry name of the checkpoint this point trains (a control's ends in ``-benign`` or
        ``-generic``)."""
        control = "" if self.treatment == "caught" else f"-{self.treatment}"
        return (f"{self.sweep}-{self.organism}-{self.train_on}-c{self.caught}-s{self.steps}"
                f"-{defense_slug(self.defense)}-r{self.seed}{control}")


def builtin_configs() -> list[str]:
    """Names of the configs shipped with the package (``inspect-misalign sweep <name>``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def with_base(config: SweepConfig, base: str) -> SweepConfig:
    """``config`` with every organism that has ``build`` options built on ``base`` (``sweep --base``: the
    same experiment on another model). An organism already registered on another base is refused: it
    would be reused as it is."""
    from inspect_misalign.models import is_registered, resolve

    organisms = []
    for organism in config.organisms:
        if organism.build is None:
            raise MisalignError(f"--base: organism {organism.name!r} has no build options (it is used as "
                                "registered); give it build: {...} or drop --base")
        if is_registered(organism.name) and resolve(organism.name).config.get("base") != base:
            raise MisalignError(f"--base {base}: organism {organism.name!r} is registered on another base; "
                                "use another INSPECT_MISALIGN_HOME or delete it")
        organisms.append(organism.model_copy(update={"build": {**organism.build, "base": base}}))
    return config.model_copy(update={"organisms": organisms})


def _config_path(source: str | Path, near: Path | None = None) -> Path:
    """The YAML file of ``source``: a path (relative to ``near``'s folder first, when given) or a shipped
    config name."""
    path = checks.path(source, "sweep config")
    if near is not None and not path.is_absolute() and (near.parent / path).is_file():
        return near.parent / path
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{source}.yaml"
    if not shipped.is_file():
        raise MisalignError(
            f"sweep config {source} not found; pass a YAML file or one of {', '.join(builtin_configs())}"
        )
    return shipped


def _read_mapping(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of ``path`` with ``extends:`` resolved: the named config's keys, then this file's
    keys replacing them whole (no deep merge); ``name`` and ``out`` are never inherited."""
    data = read_yaml(path, f"sweep config {path}")
    if not isinstance(data, dict):
        raise MisalignError(f"sweep config {path} must be a YAML mapping (see docs/experiments.md)")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise MisalignError(f"sweep config {path}: extends must be one config name or YAML path, "
                            f"not {parent!r}")
    if "name" not in data:
        raise MisalignError(f"sweep config {path} extends {parent} but sets no name; give it its own name "
                            "(its runs and checkpoints are named after it)")
    parent_path = _config_path(parent, near=path)
    if parent_path.resolve() in {p.resolve() for p in (*chain, path)}:
        raise MisalignError(f"sweep config {path}: extends {parent} leads back to itself; remove the cycle")
    inherited = _read_mapping(parent_path, (*chain, path))
    inherited.pop("name", None)
    inherited.pop("out", None)
    return {**inherited, **data}


def load_config(
    source: str | Path, overrides: dict[str, Any] | None = None
) -> SweepConfig | EMDefensesConfig:
    """Read and validate a sweep config (a YAML path or a built-in name); one-line error if invalid.

    ``extends: <config>`` takes another config's keys as defaults (see :func:`_read_mapping`). A
    :class:`SweepConfig`, or with ``kind: em_defenses`` the defenses experiment's
    :class:`~inspect_misalign.experiments._em_config.EMDefensesConfig`."""
    path = _config_path(source)
    data = _read_mapping(path)
    data.update(overrides or {})
    kind: type[SweepConfig | EMDefensesConfig]
    kind = EMDefensesConfig if data.get("kind") == "em_defenses" else SweepConfig
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise MisalignError(f"sweep config {path}: {validation_message(e)}") from e
