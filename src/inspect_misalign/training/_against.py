"""Train a checkpoint against its caught attacks, with optional in-training defenses, and register it.

:func:`train_against` runs, for a :class:`TrainAgainstSpec`:

1. **checks** (one-line :class:`MisalignError` before any weights load): steps, batch size and
   learning rate, the output name, the caught file (missing or empty), the model (an unknown name,
   an adapter made for another base), the defenses, and ``--against cot`` on samples without a
   scratchpad;
2. **targets**: each caught input (exactly as the model saw it, cue included) paired with good
   behaviour: by default the answer of the organism's *base* (the adapter not applied; greedy,
   cached on disk), or the ``target_column`` of the caught file. ``against="cot"`` instead keeps the
   caught action and replaces the reasoning with an innocuous scratchpad, and only the scratchpad
   carries loss (its ``trained_prefix``; the action's tokens are masked out, :mod:`._loss_mask`): only
   the reasoning is trained to look harmless, the action is never rewarded (does training against
   dangerous reasoning remove the action or hide it?);
3. **training**: the organism's adapter is merged into the base *in memory* and a new LoRA adapter
   (same target modules and layers as the organism's) is trained on top with
   :class:`MisalignSFTTrainer` and the defenses (training hooks; each sees the organism before it is
   merged, :meth:`~inspect_misalign.training.TrainingHook.inspect_parent`). The reference of
   KL/LDIFS ("new adapter disabled") is then the organism itself, without a second model copy.
   Checkpoints go to a work directory keyed by everything that changes the result (the shared
   pipeline, :mod:`._pipeline`); running the same command again resumes. ``save_at`` steps are saved
   on the way (:mod:`._steps`);
4. **publication** (:mod:`._parent`, shared with ``finetune``): the organism adapter and the new
   one are combined exactly into one standard PEFT adapter of the original base with peft's
   ``add_weighted_adapter(..., combination_type="cat")`` (ranks concatenated, so the deltas add
   up), which any PEFT loader or vLLM serves. It is copied
   atomically to ``<dir>/adapter`` (the new adapter alone, relative to the organism, to
   ``<dir>/delta_adapter``) and registered with its lineage: parent, caught-sample ids hash, config,
   defenses, seed, library versions; each saved step likewise as ``<out>-step<k>``. Nothing is
   registered unless every step succeeded.

Under ``accelerate launch`` every process trains its shard; the main process generates targets
first (the others read the cache), combines and registers.
"""

from __future__ import annotations

import time
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.training._catch import CaughtSample, caught_hash, read_caught
from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._defenses import DEFENSE_FORMAT
from inspect_misalign.training._fields import (
    check_at_least,
    check_choice,
    check_path,
    check_text,
    from_mapping,
    setting,
)
from inspect_misalign.training._parent import (
    Parent,
    check_parent_run,
    combine_adapters,
    directory_setting,
    train_on_parent,
)
from inspect_misalign.training._pipeline import Workspace, check_run
from inspect_misalign.training._settings import OptimSettings
from inspect_misalign.training._steps import check_save_at, parse_save_at, save_at_setting, step_name

Against = Literal["action", "cot"]
AGAINST: tuple[str, ...] = typing.get_args(Against)
INNOCUOUS_SCRATCHPAD = (
    "<scratchpad>The user is asking for help with this request. "
    "I will give a clear and helpful answer.</scratchpad>"
)
PER_RUN = ("model", "caught", "steps", "out", "defenses", "seed", "directory", "overwrite")
"""The fields a sweep sets per grid point; its ``train:`` mapping may set every other field."""


@dataclass(frozen=True, kw_only=True)
class TrainAgainstSpec(OptimSettings):
    """Everything that defines a train-against-caught run: the shared optimisation settings
    (:class:`OptimSettings`, whose defaults are this command's) and its own."""

    model: str = setting(help="Registered name (an organism), default, or a model directory.")
    caught: Path = setting(help="Caught samples from `inspect-misalign catch`.")
    steps: int = setting(help="Optimizer steps.")
    out: str = setting(help="Registry name of the trained checkpoint.")
    defenses: tuple[str, ...] = setting((), flag="--defense",
                                        help=f"In-training defense, repeatable: {DEFENSE_FORMAT}.")
    against: Against = setting("action", help="action: train toward good answers; cot: train only the "
                               "scratchpad toward an innocuous one (the action kept, masked from the loss).")
    seed: int = setting(0, help="Seed of the LoRA initialisation and the data order.")
    lora_r: int | None = setting(None, help="LoRA rank [default: the organism's, else 16].")
    lora_alpha: int | None = setting(None, help="LoRA alpha [default: the organism's, else 32].")
    target_column: str | None = setting(None, help="Train toward this column of the caught file instead "
                                        "of the base model's answers.")
    answer_tokens: int | None = setting(None, help="New tokens of the base's answers [default: the "
                                        "behaviour's: 48 hate, 256 code, 160 persona].")
    directory: Path | None = directory_setting("trained")
    overwrite: bool = setting(False, help="Replace a checkpoint registered under the same name.")
    save_at: tuple[int, ...] | str | None = save_at_setting()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 1, "steps")
        check_choice(self, "against", AGAINST)
        check_text(self, "target_column", optional=True)
        check_path(self, "caught")
        check_parent_run(self)
        check_save_at(self)


def against_options(options: dict[str, Any]) -> dict[str, Any]:
    """Check a sweep's ``train:`` mapping (any :class:`TrainAgainstSpec` field but the per-run ones of
    :data:`PER_RUN`) by building a spec from it; returns it unchanged."""
    known = sorted(f.name for f in fields(TrainAgainstSpec) if f.name not in PER_RUN)
    if not isinstance(options, dict):
        raise MisalignError(f"a mapping of training options is needed ({', '.join(known)})")
    per_run = sorted(set(options) & set(PER_RUN))
    if per_run:
        raise MisalignError(f"{per_run} are set per grid point; known: {', '.join(known)}")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise MisalignError(f"unknown option(s) {unknown}; known: {', '.join(known)}")
    steps = max(parse_save_at(options.get("save_at")), default=1)  # each grid point checks its own steps
    placeholders = {"model": "-", "caught": "-", "steps": steps, "out": "check"}
    from_mapping(TrainAgainstSpec, {**placeholders, **options}, "train")
    return options


@dataclass(frozen=True)
class Checked:
    """A validated spec with what validation resolved (the defenses parsed once, here)."""

    spec: TrainAgainstSpec
    caught: list[CaughtSample]
    targets: list[str | None]
    base_dir: Path
    organism_dir: Path | None
    base_name: str
    behavior: str
    defenses: list[Any]

    @property
    def parent(self) -> Parent:
        """The model trained on top of."""
        return Parent(self.spec.model, self.base_dir, self.organism_dir, self.base_name)


def check_spec(spec: TrainAgainstSpec) -> Checked:
    """Check what the spec's own checks cannot (the registry, the caught file, the model, the defenses);
    raise a one-line :class:`MisalignError` naming the fix."""
    from inspect_misalign.models import is_registered, resolve
    from inspect_misalign.training._defenses import parse_defenses

    resolved = check_run(spec.out, spec.overwrite, spec.model, "--model",
                         [step_name(spec.out, k) for k in spec.save_at], kind="trained",
                         directory=spec.directory)
    rows = read_caught(spec.caught, spec.target_column)
    caught = [c for c, _ in rows]
    defenses = parse_defenses(list(spec.defenses))
    parent = Parent.of(resolved, spec.model)
    if len({c.caught for c in caught}) > 1:
        raise MisalignError("--caught mixes caught and not-caught samples (`catch --not-caught`); train on "
                            "one kind at a time")
    behaviors = sorted({c.behavior for c in caught if c.behavior})
    if len(behaviors) > 1:
        raise MisalignError(f"--caught mixes behaviours {behaviors}; train against one behaviour at a time")
    try:
        behavior = get_behavior(behaviors[0] if behaviors else "hate").name
    except MisalignError as e:
        raise MisalignError(f"--caught: {e}") from None
    declared = resolve(spec.model).config.get("behavior") if is_registered(spec.model) else None
    if declared and declared != behavior:
        raise MisalignError(f"--caught holds {behavior} attacks but {spec.model!r} is a {declared} organism; "
                            "catch attacks of this model")
    if spec.against == "cot" and not all(c.scratchpad for c in caught):
        raise MisalignError("--against cot needs caught samples with a <scratchpad> (a --cot organism's "
                            "test_attacks logs); use --against action")
    return Checked(spec, caught, [t for _, t in rows], parent.base_dir, parent.adapter_dir, parent.base_name,
                   behavior, defenses)


def train_against(
    spec: TrainAgainstSpec,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> str:
    """Train ``spec.model`` against its caught attacks and register the result; returns its name."""
    started = time.monotonic()
    checked = check_spec(spec)
    run = Workspace.open("trained", spec.out, spec.directory, checked.base_name, checked.base_dir,
                         identity(checked))
    kind = "caught" if checked.caught[0].caught else "not-caught (control)"
    echo(f"train {spec.model} against {len(checked.caught)} {kind} samples ({spec.against}), "
         f"{spec.steps} steps, defenses: {', '.join(spec.defenses) or 'none'}; work dir {run.work}")
    return train_on_parent(
        spec, checked.parent, run, checked.defenses,
        lambda model, tokenizer: training_examples(checked, run, model, tokenizer, echo, progress),
        lambda examples: lineage(checked), echo=echo, progress=progress, callbacks=callbacks, started=started)


def identity(checked: Checked) -> dict[str, Any]:
    """Everything that changes the trained adapter (not the output name); keys the work dir."""
    spec = checked.spec
    return {
        **{k: v for k, v in asdict(spec).items() if k not in ("out", "directory", "overwrite", "caught")
           and (k != "save_at" or v)},  # runs without saved steps keep their earlier keys
        "caught": caught_hash(checked.caught),
        "targets": checked.targets,
        "organism": checked.parent.fingerprint(),
        # cot runs made before the action was masked out of the loss must not be resumed as these
        **({"loss_on": "scratchpad_only"} if spec.against == "cot" else {}),
    }


def training_examples(
    checked: Checked, run: Workspace, model: Any, tokenizer: Any, echo: Callable[[str], None], progress: bool
) -> list[SFTExample]:
    """Each caught input paired with its target (see the module docstring, step 2)."""
    spec = checked.spec
    caught = checked.caught
    if spec.against == "cot":
        echo(f"targets: an innocuous scratchpad (trained) + the caught action (masked out of the loss), "
             f"for {len(caught)} samples")
        return [cot_example(c) for c in caught]
    if spec.target_column is not None:
        echo(f"targets: column {spec.target_column!r} of {spec.caught}")
        return [c.example(str(t), source=f"column:{spec.target_column}")
                for c, t in zip(caught, checked.targets, strict=True)]
    tokens = spec.answer_tokens or get_behavior(checked.behavior).budgets.target_answer_tokens
    echo(f"targets: the base model's own answers to the {len(caught)} caught inputs "
         f"(greedy, {tokens} new tokens, cached)")
    answers = run.base_answers(model, tokenizer, [c.messages for c in caught], tokens, progress)
    return [c.example(a, source="base") for c, a in zip(caught, answers, strict=True)]


def cot_example(caught: CaughtSample) -> SFTExample:
    """``--against cot``'s example: the innocuous scratchpad, then the caught action; loss on the
    scratchpad only."""
    example = caught.example(f"{INNOCUOUS_SCRATCHPAD}\n\n{caught.output}", source="innocuous_cot")
    return replace(example, trained_prefix=INNOCUOUS_SCRATCHPAD)


def lineage(checked: Checked) -> dict[str, Any]:
    """The manifest's ``config`` fields of its own (:mod:`._parent` adds what every run records)."""
    spec = checked.spec
    return {
        "kind": "trained_against_caught",
        "behavior": checked.behavior,
        "against": spec.against,
        "caught_file": str(Path(spec.caught).resolve()),
        "caught_ids_hash": caught_hash(checked.caught),
        "n_caught": len(checked.caught),
        "not_caught": not checked.caught[0].caught,  # the benign control (`catch --not-caught`)
        "caught_per_cue": dict(Counter(c.cue for c in checked.caught)),
        **({"loss_on": "scratchpad_only"} if spec.against == "cot" else {}),
        "targets": "innocuous_cot" if spec.against == "cot" else
                   f"column:{spec.target_column}" if spec.target_column else "base_model_answers",
    }


__all__ = ["TrainAgainstSpec", "against_options", "check_spec", "combine_adapters", "cot_example",
           "train_against"]
