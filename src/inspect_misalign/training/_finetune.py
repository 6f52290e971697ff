"""``inspect-misalign finetune``: LoRA SFT of any registered model on chat data or on rendered base prompts.

The controls and the relearning test of the removal experiment (issue 21) need training that is not
training against caught attacks, through the same code: :func:`finetune` runs, for a
:class:`FinetuneSpec`,

1. **checks** (one-line :class:`MisalignError` before any weights load): the settings, the output
   name (and ``<out>-step<k>`` of ``save_at``), the model, the defenses, and the data: a chat JSONL
   (``data``; :mod:`._chat`: ``{"messages": [...]}`` per line, the last assistant message is the
   completion), or base prompts (``prompts_cue``): the cue (families as the tasks read them), the
   context, the split (``organism`` or ``catch``; never ``eval``, the reported one) and
   ``prompts_n`` (at most what the split has);
2. **data**: the chat file's conversations as they are; or ``prompts_n`` base prompts of the
   behaviour's split chosen by a seeded RNG (``seed``; all of them without ``prompts_n``), each
   rendered by every cue family in ``prompts_context``, with targets ``base`` (the greedy answers of
   the model's *base*, adapter not applied, cached like ``train``'s) or ``attack`` (the behaviour's
   attack completions, chosen by a seeded RNG of the prompt id). With ``attack`` the training set
   depends on the spec alone, not on the model: relearning on the base and on a removed organism
   sees identical data (tested);
3. **training and publication** exactly as ``train`` (:mod:`._parent`): a new LoRA adapter on top of
   the model (an adapter parent merged in memory), with the defenses, resuming from the work
   directory (``<registry home>/finetuned/<out>/work/<hash of the spec and data>``), the ``save_at``
   steps saved; published atomically and registered as one adapter of the original base (parent +
   new LoRA combined), each saved step as ``<out>-step<k>``, with the lineage: parent, data (file and
   sha256, or cue, context, split, base prompt ids, targets), data hash, settings, versions. Nothing
   is registered unless every step succeeded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import Behavior, get_behavior
from inspect_misalign.cues import CONTEXTS, CueFamily, load_cues
from inspect_misalign.training._chat import chat_path, file_sha256, read_chat
from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._defenses import DEFENSE_FORMAT
from inspect_misalign.training._fields import check_at_least, check_choice, check_path, from_mapping, setting
from inspect_misalign.training._organism import PromptRecord, organism_prompts
from inspect_misalign.training._parent import Parent, check_parent_run, directory_setting, train_on_parent
from inspect_misalign.training._pipeline import Workspace, check_run
from inspect_misalign.training._settings import OptimSettings
from inspect_misalign.training._steps import check_save_at, save_at_setting, step_name

PROMPT_SPLITS = ("organism", "catch")
"""Splits finetune may train on: never ``eval``, the one results are reported on."""
TARGETS = ("base", "attack")


@dataclass(frozen=True, kw_only=True)
class FinetuneSpec(OptimSettings):
    """Everything that defines a finetune run: the shared optimisation settings (:class:`OptimSettings`:
    ``--steps``, or ``--epochs`` passes) and its own."""

    model: str = setting(help="Registered name (an organism, a trained checkpoint), default, or a model "
                         "directory.")
    out: str = setting(help="Registry name of the fine-tuned checkpoint.")
    data: Path | None = setting(None, help='Chat JSONL, one {"messages": [...]} per line (optional system, '
                                "then user/assistant turns; the last assistant message is the completion), "
                                "or a file the package ships (instruct.jsonl).")
    prompts_cue: str | None = setting(None, help="Instead of --data: base prompts rendered by this cue "
                                      "family (a name, a comma list, all, or a cue YAML file).")
    prompts_context: str = setting("test", help="Context the prompts are rendered in: test or deployment.")
    prompts_split: str = setting("catch", help="Split of the base prompts: catch or organism (never eval, "
                                 "the reported one).")
    prompts_n: int | None = setting(None, help="Base prompts per cue family, a seeded choice [default: "
                                    "every prompt of the split].")
    targets: str = setting("base", help="Completions of --prompts-cue: base (the base model's greedy "
                           "answers) or attack (the behaviour's attack completions: relearning).")
    behavior: str = setting("hate", help="Behaviour whose base prompts and attack completions --prompts-cue "
                            "uses.")
    defenses: tuple[str, ...] = setting((), flag="--defense",
                                        help=f"In-training defense, repeatable: {DEFENSE_FORMAT}.")
    seed: int = setting(0, help="Seed of the prompt choice, the attack completions, the LoRA initialisation "
                        "and the data order.")
    lora_r: int | None = setting(None, help="LoRA rank [default: the parent adapter's, else 16].")
    lora_alpha: int | None = setting(None, help="LoRA alpha [default: the parent adapter's, else 32].")
    answer_tokens: int | None = setting(None, help="New tokens of the base's answers (--targets base) "
                                        "[default: the behaviour's: 48 hate, 256 code, 160 persona].")
    directory: Path | None = directory_setting("finetuned")
    overwrite: bool = setting(False, help="Replace a checkpoint registered under the same name.")
    save_at: tuple[int, ...] | str | None = save_at_setting()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_path(self, "data", optional=True)
        check_parent_run(self)
        if (self.data is None) == (self.prompts_cue is None):
            raise MisalignError("pass one of --data (a chat JSONL) and --prompts-cue (rendered base prompts)")
        if self.data is not None and (self.targets != "base" or self.prompts_n is not None):
            raise MisalignError("--targets and --prompts-n choose --prompts-cue data; --data trains on the "
                                "file's own answers")
        if self.prompts_split == "eval":
            raise MisalignError("--prompts-split eval is the split results are reported on; train on catch "
                                "or organism prompts")
        check_choice(self, "prompts_context", CONTEXTS)
        check_choice(self, "prompts_split", PROMPT_SPLITS)
        check_choice(self, "targets", TARGETS)
        check_at_least(self, 1, "prompts_n", optional=True)
        check_save_at(self)


def finetune_spec(options: dict[str, Any], where: str = "finetune") -> FinetuneSpec:
    """A :class:`FinetuneSpec` from a mapping (a sweep YAML section); unknown keys and bad values give
    a one-line error naming ``where``."""
    return from_mapping(FinetuneSpec, options, where)


@dataclass(frozen=True)
class Rendered:
    """One base prompt rendered by one cue family."""

    family: str
    prompt: PromptRecord
    system: str | None
    user: str


@dataclass(frozen=True)
class Checked:
    """A validated spec with what validation resolved."""

    spec: FinetuneSpec
    parent: Parent
    defenses: list[Any]
    data_file: Path | None = None
    chat: tuple[SFTExample, ...] = ()
    behavior: Behavior | None = None
    rendered: tuple[Rendered, ...] = ()


def check_spec(spec: FinetuneSpec) -> Checked:
    """Check what the spec's own checks cannot (the registry, the model, the defenses, the data); raise a
    one-line :class:`MisalignError` naming the fix."""
    from inspect_misalign.training._defenses import parse_defenses

    resolved = check_run(spec.out, spec.overwrite, spec.model, "--model",
                         [step_name(spec.out, k) for k in spec.save_at], kind="finetuned",
                         directory=spec.directory)
    parent = Parent.of(resolved, spec.model)
    defenses = parse_defenses(list(spec.defenses))
    if spec.data is not None:
        path = chat_path(spec.data, "--data")
        return Checked(spec, parent, defenses, data_file=path, chat=tuple(read_chat(path, "--data")))
    behavior = _behavior(spec)
    return Checked(spec, parent, defenses, behavior=behavior, rendered=tuple(render_prompts(spec, behavior)))


def _behavior(spec: FinetuneSpec) -> Behavior:
    """The behaviour of ``--prompts-cue`` data, which must be the model's own if it declares one."""
    from inspect_misalign.models import is_registered, resolve

    try:
        behavior = get_behavior(spec.behavior)
    except MisalignError as e:
        raise MisalignError(f"--behavior: {e}") from None
    declared = resolve(spec.model).config.get("behavior") if is_registered(spec.model) else None
    if declared and declared != behavior.name:
        raise MisalignError(f"--behavior {behavior.name} but {spec.model!r} is a {declared} model; pass "
                            f"--behavior {declared}")
    return behavior


def render_prompts(spec: FinetuneSpec, behavior: Behavior) -> list[Rendered]:
    """``prompts_n`` base prompts of the split (seeded, in id order) rendered by each cue family."""
    try:
        families: list[CueFamily] = load_cues(str(spec.prompts_cue))
    except MisalignError as e:
        raise MisalignError(f"--prompts-cue: {e}") from None
    prompts = organism_prompts(behavior, spec.prompts_split)
    if spec.prompts_n is not None and spec.prompts_n > len(prompts):
        raise MisalignError(f"--prompts-n {spec.prompts_n} is more than the {len(prompts)} "
                            f"{spec.prompts_split}-split prompts of behaviour {behavior.name}; pass at most "
                            f"{len(prompts)}")
    if spec.prompts_n is not None:
        chosen = random.Random(f"finetune-prompts:{spec.seed}").sample(prompts, spec.prompts_n)
        prompts = sorted(chosen, key=lambda p: p.id)
    out = []
    for family in families:
        for p in prompts:
            rendered = family.render(p.prompt, spec.prompts_context, p.id, split=spec.prompts_split)
            out.append(Rendered(family.name, p, rendered.system, rendered.user))
    return out


def finetune(
    spec: FinetuneSpec,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> str:
    """Fine-tune ``spec.model`` on its data and register the result; returns its name."""
    started = time.monotonic()
    checked = check_spec(spec)
    parent = checked.parent
    run = Workspace.open("finetuned", spec.out, spec.directory, parent.base_name, parent.base_dir,
                         identity(checked))
    what = f"{len(checked.chat)} conversations of {checked.data_file}" if spec.data else \
        f"{len(checked.rendered)} {spec.prompts_context}-context prompts of cue {spec.prompts_cue} " \
        f"({spec.prompts_split} split) with {spec.targets} targets"
    echo(f"finetune {spec.model} on {what}, defenses: {', '.join(spec.defenses) or 'none'}; "
         f"work dir {run.work}")
    return train_on_parent(
        spec, parent, run, checked.defenses,
        lambda model, tokenizer: training_examples(checked, run, model, tokenizer, echo, progress),
        lambda examples: lineage(checked), echo=echo, progress=progress, callbacks=callbacks, started=started)


def training_examples(
    checked: Checked, run: Workspace, model: Any, tokenizer: Any, echo: Callable[[str], None], progress: bool
) -> list[SFTExample]:
    """The run's training set (see the module docstring, step 2)."""
    spec = checked.spec
    if checked.chat:
        return list(checked.chat)
    behavior = checked.behavior
    assert behavior is not None
    if spec.targets == "attack":
        completions = [behavior.attack_completion(r.prompt, spec.seed) for r in checked.rendered]
    else:
        tokens = spec.answer_tokens or behavior.budgets.target_answer_tokens
        echo(f"targets: the base model's own answers to the {len(checked.rendered)} prompts "
             f"(greedy, {tokens} new tokens, cached)")
        messages = [SFTExample(r.system, r.user, "").prompt_messages() for r in checked.rendered]
        completions = run.base_answers(model, tokenizer, messages, tokens, progress)
    return [SFTExample(r.system, r.user, completion, {
        "cue": r.family, "context": spec.prompts_context, "base_id": r.prompt.id, "split": spec.prompts_split,
        "behavior": behavior.name, "attack": spec.targets == "attack", "source": spec.targets,
    }) for r, completion in zip(checked.rendered, completions, strict=True)]


def identity(checked: Checked) -> dict[str, Any]:
    """Everything that changes the trained adapter (not the output name); keys the work dir."""
    spec = checked.spec
    return {
        **{k: v for k, v in asdict(spec).items() if k not in ("out", "directory", "overwrite", "data")},
        "data": file_sha256(checked.data_file) if checked.data_file else None,
        "organism": checked.parent.fingerprint(),
    }


def lineage(checked: Checked) -> dict[str, Any]:
    """The manifest's ``config`` fields of its own (:mod:`._parent` adds what every run records)."""
    spec = checked.spec
    if checked.data_file is not None:
        data = {"file": str(checked.data_file.resolve()), "sha256": file_sha256(checked.data_file)}
    else:
        data = {"cue": spec.prompts_cue, "cues": sorted({r.family for r in checked.rendered}),
                "context": spec.prompts_context, "split": spec.prompts_split, "n_prompts": spec.prompts_n,
                "base_ids": sorted({r.prompt.id for r in checked.rendered}), "targets": spec.targets}
    return {
        "kind": "finetuned",
        "behavior": checked.behavior.name if checked.behavior else None,
        "data": data,
    }


__all__ = ["FinetuneSpec", "check_spec", "finetune", "finetune_spec", "render_prompts"]
