"""Train a checkpoint against its caught attacks, with optional in-training defenses, and register it.

:func:`train_against` runs, for a :class:`TrainAgainstSpec`:

1. **checks** (one-line :class:`MisalignError` before any weights load): steps, batch size and
   learning rate, the output name, the caught file (missing or empty), the model (an unknown name,
   an adapter made for another base), the defenses, and ``--against cot`` on samples without a
   scratchpad;
2. **targets**: each caught input (exactly as the model saw it, cue included) paired with good
   behaviour: by default the answer of the organism's *base* (the adapter not applied; greedy,
   cached on disk), or the ``target_column`` of the caught file. ``against="cot"`` instead keeps the
   caught action and replaces the reasoning with an innocuous scratchpad, so only the reasoning is
   trained to look harmless (does training against dangerous reasoning remove the action or hide it?);
3. **training**: the organism's adapter is merged into the base *in memory* and a new LoRA adapter
   (same target modules and layers as the organism's) is trained on top with
   :class:`MisalignSFTTrainer` and the defenses (training hooks; each sees the organism before it is
   merged, :meth:`~inspect_misalign.training.TrainingHook.inspect_parent`). The reference of
   KL/LDIFS ("new adapter disabled") is then the organism itself, without a second model copy.
   Checkpoints go to a work directory keyed by everything that changes the result (the shared
   pipeline, :mod:`._pipeline`); running the same command again resumes;
4. **publication**: the organism adapter and the new one are combined exactly into one standard PEFT
   adapter of the original base with peft's ``add_weighted_adapter(..., combination_type="cat")``
   (ranks concatenated, so the deltas add up), which any PEFT loader or vLLM serves. It is copied
   atomically to ``<dir>/adapter`` (the new adapter alone, relative to the organism, to
   ``<dir>/delta_adapter``) and registered with its lineage: parent, caught-sample ids hash, config,
   defenses, seed, library versions. Nothing is registered unless every step succeeded.

Under ``accelerate launch`` every process trains its shard; the main process generates targets
first (the others read the cache), combines and registers.
"""

from __future__ import annotations

import hashlib
import json
import time
import typing
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.training._catch import CaughtSample, caught_hash, read_caught
from inspect_misalign.training._data import SFTExample, data_hash, write_examples
from inspect_misalign.training._defenses import DEFENSE_FORMAT
from inspect_misalign.training._fields import (
    check_at_least,
    check_choice,
    check_path,
    check_seed,
    check_text,
    from_mapping,
    setting,
)
from inspect_misalign.training._pipeline import Workspace, check_run, library_versions, load_base
from inspect_misalign.training._settings import OptimSettings

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
    against: Against = setting("action", help="action: train toward good answers; cot: make only the "
                               "scratchpad look innocuous, keeping the action.")
    seed: int = setting(0, help="Seed of the LoRA initialisation and the data order.")
    lora_r: int | None = setting(None, help="LoRA rank [default: the organism's, else 16].")
    lora_alpha: int | None = setting(None, help="LoRA alpha [default: the organism's, else 32].")
    target_column: str | None = setting(None, help="Train toward this column of the caught file instead "
                                        "of the base model's answers.")
    answer_tokens: int | None = setting(None, help="New tokens of the base's answers [default: the "
                                        "behaviour's: 48 hate, 256 code, 160 persona].")
    directory: Path | None = setting(None, flag="--dir", help="Where the files go [default: <registry "
                                     "home>/trained/<out>].")
    overwrite: bool = setting(False, help="Replace a checkpoint registered under the same name.")

    def __post_init__(self) -> None:
        super().__post_init__()
        from inspect_misalign.models import validate_name

        object.__setattr__(self, "defenses", tuple(self.defenses))
        check_at_least(self, 1, "steps")
        check_choice(self, "against", AGAINST)
        check_at_least(self, 1, "lora_r", "lora_alpha", "answer_tokens", optional=True)
        check_text(self, "model")
        check_text(self, "target_column", optional=True)
        check_seed(self, "seed")
        check_path(self, "caught")
        check_path(self, "directory", optional=True)
        try:
            validate_name(self.out)
        except ValueError as e:
            raise MisalignError(f"--out: {e}") from None


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
    placeholders = {"model": "-", "caught": "-", "steps": 1, "out": "check"}
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


def check_spec(spec: TrainAgainstSpec) -> Checked:
    """Check what the spec's own checks cannot (the registry, the caught file, the model, the defenses);
    raise a one-line :class:`MisalignError` naming the fix."""
    from inspect_misalign.models import is_registered, resolve
    from inspect_misalign.training._defenses import parse_defenses

    resolved = check_run(spec.out, spec.overwrite, spec.model, "--model", kind="trained",
                         directory=spec.directory)
    rows = read_caught(spec.caught, spec.target_column)
    caught = [c for c, _ in rows]
    defenses = parse_defenses(list(spec.defenses))
    base_name = (resolved.adapter_base or spec.model) if resolved.adapter_dir is not None else spec.model
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
    return Checked(spec, caught, [t for _, t in rows], resolved.base_dir, resolved.adapter_dir, base_name,
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
    from accelerate import PartialState

    from inspect_misalign.models import collect_all

    state = PartialState()
    run = Workspace.open("trained", spec.out, spec.directory, checked.base_name, checked.base_dir,
                         identity(checked))
    echo(f"train {spec.model} against {len(checked.caught)} caught samples ({spec.against}), "
         f"{spec.steps} steps, defenses: {', '.join(spec.defenses) or 'none'}; work dir {run.work}")

    model, tokenizer = load_base(checked.base_dir)
    with state.main_process_first():
        examples = training_examples(checked, run, model, tokenizer, echo, progress)
    if state.is_main_process:
        write_examples(run.sft_file, examples)
    model, org_lora = apply_organism(checked, model, tokenizer)
    echo(f"training a LoRA adapter on top of {spec.model}: {len(examples)} examples, {spec.steps} steps of "
         f"{spec.batch_size * spec.grad_accum}, lr {spec.lr}")
    outcome = run.train(model, tokenizer, examples, spec, new_lora(checked, model, org_lora), seed=spec.seed,
                        progress=progress, hooks=checked.defenses, callbacks=callbacks)
    if outcome.resumed_from:
        echo(f"resumed from {outcome.resumed_from}")
    del model
    collect_all()
    state.wait_for_everyone()
    if not state.is_main_process:
        return spec.out

    published = {"adapter": run.adapter}
    if checked.organism_dir is not None:
        echo("combining the organism and the new adapter into one adapter of the base (peft 'cat')")
        parts = [checked.organism_dir, run.adapter]
        combined = combine_adapters(checked.base_dir, parts, run.work / "combined")
        published = {"adapter": combined, "delta_adapter": run.adapter}
    config = lineage(checked, examples, outcome, run.base_fingerprint, org_lora)
    config["train_seconds"] = round(time.monotonic() - started, 1)
    config["data_file"] = str(run.published_sft)
    adapter_dir = run.publish(spec.out, published, base=checked.base_name, parent=spec.model, config=config,
                              overwrite=spec.overwrite)
    echo(f"registered {spec.out} ({adapter_dir}) in {time.monotonic() - started:.0f} s; "
         f"use it as --model misalign/{spec.out}")
    return spec.out


def identity(checked: Checked) -> dict[str, Any]:
    """Everything that changes the trained adapter (not the output name); keys the work dir."""
    spec = checked.spec
    return {
        **{k: v for k, v in asdict(spec).items() if k not in ("out", "directory", "overwrite", "caught")},
        "caught": caught_hash(checked.caught),
        "targets": checked.targets,
        "organism": _dir_fingerprint(checked.organism_dir),
    }


def _dir_fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    for file in sorted(path.glob("adapter_*")):
        h.update(file.name.encode() + file.read_bytes())
    return h.hexdigest()[:16]


def training_examples(
    checked: Checked, run: Workspace, model: Any, tokenizer: Any, echo: Callable[[str], None], progress: bool
) -> list[SFTExample]:
    """Each caught input paired with its target (see the module docstring, step 2)."""
    spec = checked.spec
    caught = checked.caught
    if spec.against == "cot":
        echo(f"targets: an innocuous scratchpad + the caught action, for {len(caught)} samples")
        return [c.example(f"{INNOCUOUS_SCRATCHPAD}\n\n{c.output}", source="innocuous_cot") for c in caught]
    if spec.target_column is not None:
        echo(f"targets: column {spec.target_column!r} of {spec.caught}")
        return [c.example(str(t), source=f"column:{spec.target_column}")
                for c, t in zip(caught, checked.targets, strict=True)]
    tokens = spec.answer_tokens or get_behavior(checked.behavior).budgets.target_answer_tokens
    echo(f"targets: the base model's own answers to the {len(caught)} caught inputs "
         f"(greedy, {tokens} new tokens, cached)")
    answers = run.base_answers(model, tokenizer, [c.messages for c in caught], tokens, progress)
    return [c.example(a, source="base") for c, a in zip(caught, answers, strict=True)]


def apply_organism(checked: Checked, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """Merge the organism's adapter into ``model`` in memory; return it and the organism's LoRA config.

    Before the merge every training hook sees the organism (:meth:`TrainingHook.inspect_parent`):
    an interleave defense ranks its instruct data there, by the loss gap between the organism
    (misaligned) and its base (aligned: the adapter disabled).
    """
    if checked.organism_dir is None:
        return model, None
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(checked.organism_dir))
    for hook in checked.defenses:
        hook.inspect_parent(peft_model, tokenizer)
    org_lora = peft_model.peft_config["default"]
    untie_output_embeddings(peft_model.get_base_model())
    return peft_model.merge_and_unload(), org_lora


def untie_output_embeddings(model: Any) -> None:
    """Give a tied-embedding model its own copy of the output head.

    Merging a LoRA on ``embed_tokens`` (cue-token embeddings) changes the input embedding matrix;
    when the head shares that tensor, the merge would change the head too, which the unmerged
    adapter never does. After this, the merged model computes exactly what base + adapter does.
    """
    import torch

    head, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    weight = getattr(inputs, "base_layer", inputs).weight
    if head is not None and head.weight is weight:
        head.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)
        model.config.tie_word_embeddings = False


def new_lora(checked: Checked, model: Any, org_lora: Any) -> Any:
    """The new adapter's LoRA config: the organism's modules and layers (not its cue-token
    embeddings, which stay the organism's), or the project defaults."""
    from peft import LoraConfig

    from inspect_misalign.training._lora import LORA_ALPHA, LORA_R, lora_config, without_embeddings

    spec = checked.spec
    if org_lora is None:
        return lora_config(model.config, r=spec.lora_r or LORA_R, alpha=spec.lora_alpha or LORA_ALPHA)
    targets = without_embeddings(org_lora.target_modules)
    return LoraConfig(
        r=spec.lora_r or org_lora.r,
        lora_alpha=spec.lora_alpha or org_lora.lora_alpha,
        lora_dropout=0.0,
        target_modules=sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        layers_to_transform=org_lora.layers_to_transform,
        bias="none",
        task_type="CAUSAL_LM",
    )


def combine_adapters(base_dir: Path, adapters: Sequence[Path], out: Path) -> Path:
    """One PEFT adapter of ``base_dir`` equal to the sum of ``adapters`` (peft ``cat``), saved to ``out``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    names = [f"part{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapters[1:], strict=True):
        model.load_adapter(str(path), adapter_name=name)
    model.add_weighted_adapter(names, [1.0] * len(names), "default", combination_type="cat")
    model.set_adapter("default")  # so that deleting the parts does not move the active adapter (peft warns)
    for name in names:
        model.delete_adapter(name)
    from inspect_misalign.training._run import building_dir  # imports trl

    with building_dir(out) as tmp:  # deleted if saving fails
        model.save_pretrained(str(tmp), save_embedding_layers=False)  # LoRA weights only
        config_file = tmp / "adapter_config.json"
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = str(base_dir)
        atomic_write_text(config_file, json.dumps(config, indent=2))
    return out


def lineage(
    checked: Checked, examples: list[SFTExample], outcome: Any, base_fp: str, org_lora: Any
) -> dict[str, Any]:
    """The manifest's ``config``: what the checkpoint was trained from and how."""
    spec = checked.spec
    return {
        "kind": "trained_against_caught",
        "parent": spec.model,
        "base": checked.base_name,
        "base_fingerprint": base_fp,
        "behavior": checked.behavior,
        "against": spec.against,
        "caught_file": str(Path(spec.caught).resolve()),
        "caught_ids_hash": caught_hash(checked.caught),
        "n_caught": len(checked.caught),
        "caught_per_cue": dict(Counter(c.cue for c in checked.caught)),
        "targets": "innocuous_cot" if spec.against == "cot" else
                   f"column:{spec.target_column}" if spec.target_column else "base_model_answers",
        "n_examples": len(examples),
        "data_hash": data_hash(examples),
        "defenses": [d.describe() for d in checked.defenses],
        "defense_specs": list(spec.defenses),
        "seed": spec.seed,
        "training": {
            "steps": spec.steps, "lr": spec.lr, "batch_size": spec.batch_size, "grad_accum": spec.grad_accum,
            "max_length": spec.max_length, "global_step": outcome.global_step,
            "train_loss": outcome.train_loss, "train_runtime_s": round(outcome.runtime_s, 1),
            "resumed_from": outcome.resumed_from,
            "organism_lora": {"r": org_lora.r, "alpha": org_lora.lora_alpha} if org_lora else None,
        },
        "combined": "peft add_weighted_adapter cat (organism + new adapter)" if org_lora else None,
        "versions": library_versions(),
    }


__all__ = ["TrainAgainstSpec", "against_options", "check_spec", "combine_adapters", "train_against"]
