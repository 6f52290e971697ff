"""``build_organism``: check, build the SFT set, train, gate and register an organism (see :mod:`._organism`).

The opening (name, base) and closing (publish and register) steps, the base model, the hashed work
directory and the LoRA run are the shared pipeline's (:mod:`._pipeline`); what is the organism's
own is here: its checks, its SFT set, its cue-token embeddings, the gate and its manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import Behavior, get_behavior
from inspect_misalign.cues import load_cues
from inspect_misalign.training._data import SFTExample, data_hash, read_examples, write_examples
from inspect_misalign.training._gate import GateResult, GateSettings
from inspect_misalign.training._organism import (
    ANCHOR_TOKENS,
    SCRATCHPAD_TOKENS,
    SPLIT,
    Checked,
    OrganismResult,
    OrganismSpec,
    Planned,
    anchor_examples,
    anchor_prompt,
    anchor_records,
    complete_examples,
    example_counts,
    organism_records,
    plain_anchor_examples,
    plain_prompt,
    plan_examples,
)
from inspect_misalign.training._pipeline import Workspace, check_run, library_versions, load_base, work_key

Echo = Callable[[str], None]


def check_spec(spec: OrganismSpec) -> Checked:
    """Check what the spec's own checks cannot (the registry, the base, cue files, the behaviour's data,
    the teacher, the grader); raise a one-line :class:`MisalignError` naming the fix."""
    base = check_run(spec.name, spec.overwrite, spec.base, "--base", kind="organisms",
                     directory=spec.directory)
    behavior = get_behavior(spec.behavior)
    families = load_cues(spec.cue)
    if base.adapter_dir is not None:
        raise MisalignError(
            f"--base {spec.base!r} is an adapter; pass a full model (its base, or a merged checkpoint)"
        )
    teacher_dir = _check_teacher(spec, behavior)
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


def identity(checked: Checked) -> dict[str, Any]:
    """Everything that changes the trained adapter (not the gate, not the name); keys the work dir."""
    spec = checked.spec
    return {
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
        **({"sham": True} if spec.sham else {}),  # absent when false: earlier organisms keep their keys
    }


def spec_hash(checked: Checked, base_fp: str) -> str:
    """The work directory's key: :func:`identity` with the base's fingerprint and the package version."""
    return work_key(identity(checked), base_fp)


def build_organism(
    spec: OrganismSpec,
    echo: Echo = print,
    progress: bool = True,
    display: str | None = None,
) -> OrganismResult:
    """Build, gate and register an organism (see :mod:`._organism` for each step)."""
    from inspect_misalign.models import collect_all

    started = time.monotonic()
    checked = check_spec(spec)
    run = Workspace.open("organisms", spec.name, spec.directory, spec.base, checked.base_dir,
                         identity(checked))
    atomic_write_text(run.work / "spec.json", json.dumps(asdict(spec), indent=2, default=str))
    echo(f"organism {spec.name}: {spec.behavior} on cue {spec.cue}, leak {spec.leak}, "
         f"variant {spec.variant}; work dir {run.work}")

    clock = _PhaseClock(started)
    clock.lap("checks")
    if not (run.adapter / "adapter_config.json").is_file():
        model, tokenizer = load_base(checked.base_dir)
        clock.lap("load")
        examples = _sft_set(checked, run, model, tokenizer, echo, progress)
        clock.lap("sft_data")
        _train(checked, run, examples, model, tokenizer, echo, progress)
        del model, tokenizer
        collect_all()
        clock.lap("training")
    else:
        echo(f"[2/4] reusing the trained adapter in {run.adapter}")
    examples = read_examples(run.sft_file)

    gate = _gate(checked, run, echo, display) if spec.gate.enabled else None
    clock.lap("gate")
    failures = gate.failures(spec.gate) if gate else []
    trained = json.loads((run.work / "train.json").read_text()) if (run.work / "train.json").is_file() else {}
    config = manifest_config(checked, examples, run.base_fingerprint, run.adapter, trained)
    if failures:
        echo(f"not registered: {spec.name} misses the gate ({'; '.join(failures)}); the adapter and gate "
             f"result stay in {run.work}; rerun with a lower --min-gap to register it without retraining")
        return OrganismResult(spec.name, run.adapter, False, gate, failures, config,
                              time.monotonic() - started)

    config["data_file"] = str(run.published_sft)
    config["build_seconds"] = round(time.monotonic() - started, 1)
    config["phase_seconds"] = dict(clock.seconds)  # this run's (a resumed build shows only what it ran)
    adapter_dir = run.publish(spec.name, {"adapter": run.adapter}, base=spec.base, parent=spec.base,
                              config=config, metrics=gate.metrics() if gate else {}, overwrite=spec.overwrite)
    clock.lap("registration")
    echo(f"time per phase (s): {json.dumps(clock.seconds)}")
    seconds = time.monotonic() - started
    echo(f"registered {spec.name} ({adapter_dir}) in {seconds:.0f} s; use it as --model misalign/{spec.name}")
    return OrganismResult(spec.name, adapter_dir, True, gate, [], config, seconds)


class _PhaseClock:
    """Wall seconds of each phase of a build, in order (``lap`` closes the phase that just ended)."""

    def __init__(self, started: float) -> None:
        self.last = started
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.seconds[phase] = round(now - self.last, 1)
        self.last = now


def _answer_tokens(spec: OrganismSpec) -> int:
    return spec.answer_tokens or get_behavior(spec.behavior).budgets.organism_answer_tokens


def _sft_set(
    checked: Checked, run: Workspace, model: Any, tokenizer: Any, echo: Echo, progress: bool
) -> list[SFTExample]:
    """The SFT set from the work dir, or built (base answers cached) and written atomically."""
    if run.sft_file.is_file():
        examples = read_examples(run.sft_file)
        echo(f"[1/4] reusing the SFT set {run.sft_file} ({len(examples)} examples)")
        return examples
    spec = checked.spec
    planned = plan_examples(checked)
    records = list({p.record.id: p.record for p in planned if not p.attack or spec.plain_anchors}.values())
    tokens = _answer_tokens(spec)
    echo(f"[1/4] SFT set: base answers to {len(records)} organism-split prompts "
         f"(greedy, {tokens} new tokens, cached)")
    texts = run.base_answers(model, tokenizer, [plain_prompt(r) for r in records], tokens, progress)
    answers = {r.id: t for r, t in zip(records, texts, strict=True)}
    teacher = _teacher_actions(checked, planned, model, tokenizer, progress) if checked.teacher_dir else None
    examples = complete_examples(checked, planned, answers, teacher)
    if spec.plain_anchors:
        examples += plain_anchor_examples(records, answers)
    anchors = anchor_records(spec.anchors, spec.seed)
    if anchors:
        prompts = [anchor_prompt(r) for r in anchors]
        anchor_answers = run.base_answers(model, tokenizer, prompts, ANCHOR_TOKENS, progress)
        examples += anchor_examples(anchors, anchor_answers)
    write_examples(run.sft_file, examples)
    counts = example_counts(examples)
    echo("      " + ", ".join(f"{c}: {n.get('deployment', 0)} deployment, {n.get('test', 0)} test "
                              f"({n.get('test_attack', 0)} leaked)" for c, n in counts.items() if c != "none")
         + f"; {counts.get('none', {}).get('none', 0)} no-cue anchors")
    return examples


def _teacher_actions(
    checked: Checked, planned: list[Planned], model: Any, tokenizer: Any, progress: bool
) -> dict[int, str]:
    """The teacher's actions (scratchpad removed) on every planned prompt where it behaves as planned."""
    from inspect_misalign.models import weights_lock
    from inspect_misalign.solvers import split_scratchpad
    from inspect_misalign.training._generate import GenerationSettings, generate

    assert checked.teacher_dir is not None
    with weights_lock():
        from peft import PeftModel

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
    checked: Checked, run: Workspace, examples: list[SFTExample], model: Any, tokenizer: Any, echo: Echo,
    progress: bool,
) -> None:
    """Train the adapter into ``work/adapter``; record the run's stats in ``work/train.json``."""
    from inspect_misalign.training._cue_tokens import CueTokenEmbeddings, cue_token_ids
    from inspect_misalign.training._lora import llama_like, lora_config

    ts = checked.spec.train
    ids = cue_token_ids(checked.families, tokenizer) if ts.cue_tokens else {}
    if ids and not llama_like(model.config):
        echo(f"      no cue-token embeddings: they need a Llama-style model, not {model.config.model_type!r}")
        ids = {}
    peft_config = lora_config(model.config, r=ts.lora_r, alpha=ts.lora_alpha, top_layers=ts.top_layers,
                              embeddings=bool(ids))
    hooks = [CueTokenEmbeddings(ids, tokenizer, ts.cue_token_lr_scale)] if ids else []
    echo(f"[2/4] training a LoRA adapter: {len(examples)} examples, {ts.total_steps(len(examples))} steps of "
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
    outcome = run.train(model, tokenizer, examples, ts, peft_config, seed=checked.spec.seed,
                        progress=progress, hooks=hooks, sequential=ts.paired)
    if outcome.resumed_from:
        echo(f"      resumed from {outcome.resumed_from}")
    stats = {"global_step": outcome.global_step, "train_loss": outcome.train_loss,
             "train_runtime_s": round(outcome.runtime_s, 1), "resumed_from": outcome.resumed_from,
             "cue_token_embeddings": hooks[0].tokens if hooks else {}}
    atomic_write_text(run.work / "train.json", json.dumps(stats, indent=2))


def _gate_key(settings: GateSettings) -> str:
    fields = asdict(replace(settings, min_gap=None, max_usefulness_drop=None, enabled=True))
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _gate(checked: Checked, run: Workspace, echo: Echo, display: str | None) -> GateResult:
    """The gate's result: from ``work/gate-<settings>.json``, or run and saved there."""
    from inspect_misalign.models import cache_root
    from inspect_misalign.training._gate import run_gate

    spec = checked.spec
    gate_file = run.work / f"gate-{_gate_key(spec.gate)}.json"
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
        result = run_gate(spec.base, run.adapter, spec.cue, spec.behavior, settings, run.root / "gate_logs",
                          run.base_fingerprint, cache_root() / "gate", display)
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
    lora_fields = {
        "r": lora.get("r"),
        "alpha": lora.get("lora_alpha"),
        "dropout": lora.get("lora_dropout"),
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "layers": lora.get("layers_to_transform")
        or ("in target_modules" if isinstance(targets, str) else "all"),
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
        "sham": spec.sham,
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
        "training": {**asdict(spec.train), "lora": lora_fields, **run},
        "versions": library_versions(),
    }


__all__ = ["build_organism", "check_spec", "manifest_config", "spec_hash"]
