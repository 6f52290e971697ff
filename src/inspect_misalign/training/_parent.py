"""A new LoRA adapter trained on top of a registered model (its *parent*): ``train`` and ``finetune``.

:func:`train_on_parent` runs everything after a command has checked its input and opened its
:class:`~inspect_misalign.training.Workspace`:

1. the parent's base loads (fp32) and the command builds its training set (``examples_of``; base
   answers are generated on the main process first, the others read the cache), written to the work
   directory;
2. a parent that is an adapter (an organism, a trained checkpoint) is merged into the base *in
   memory* (:func:`apply_parent`; every hook sees it unmerged first) and a new LoRA adapter (the
   parent's modules and layers, not its cue-token embeddings: :func:`new_lora`) is trained on top
   with the hooks (defenses), resuming from the work directory's checkpoints, saving the adapters of
   ``save_at`` steps;
3. publication: with an adapter parent, the parent's adapter and the new one (the final one and
   each saved step's) are combined exactly into one standard PEFT adapter of the original base
   (:func:`combine_adapters`, peft's ``cat``), the new adapter alone kept as ``delta_adapter``;
   each is registered (``<out>``, ``<out>-step<k>``) with the lineage: the command's own fields
   (``lineage_of``) plus what every such run records (parent, base, data hash, defenses, seed,
   settings, library versions). Nothing is registered unless every step succeeded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.training._data import SFTExample, data_hash, write_examples
from inspect_misalign.training._fields import check_at_least, check_path, check_seed, check_text, setting
from inspect_misalign.training._pipeline import Workspace, library_versions, load_base


def directory_setting(kind: str) -> Any:
    """The ``--dir`` field of a run on top of a parent (``kind``: its registry folder, e.g. trained)."""
    return setting(None, flag="--dir", help=f"Where the files go [default: <registry home>/{kind}/<out>].")


def check_parent_run(spec: Any) -> None:
    """The checks every run on top of a parent shares (``train``, ``finetune``): the model and seed, the
    run's directory, LoRA sizes and answer lengths when given, and the registry name ``out``."""
    from inspect_misalign.models import validate_name

    object.__setattr__(spec, "defenses", tuple(spec.defenses))
    check_text(spec, "model")
    check_seed(spec, "seed")
    check_path(spec, "directory", optional=True)
    check_at_least(spec, 1, "lora_r", "lora_alpha", "answer_tokens", optional=True)
    try:
        validate_name(spec.out)
    except ValueError as e:
        raise MisalignError(f"--out: {e}") from None


@dataclass(frozen=True)
class Parent:
    """The model a run trains on top of: its base directory, its adapter (None for a full model) and the
    base name the new checkpoint is registered against."""

    name: str
    base_dir: Path
    adapter_dir: Path | None
    base_name: str

    @classmethod
    def of(cls, resolved: Any, name: str) -> Parent:
        """From :func:`~inspect_misalign.training._pipeline.check_run`'s resolved checkpoint of ``name``."""
        base_name = (resolved.adapter_base or name) if resolved.adapter_dir is not None else name
        return cls(name, resolved.base_dir, resolved.adapter_dir, base_name)

    def fingerprint(self) -> str | None:
        """A hash of the adapter's files (part of a run's work key), None for a full model."""
        if self.adapter_dir is None:
            return None
        h = hashlib.sha256()
        for file in sorted(self.adapter_dir.glob("adapter_*")):
            h.update(file.name.encode() + file.read_bytes())
        return h.hexdigest()[:16]


def train_on_parent(
    spec: Any,
    parent: Parent,
    run: Workspace,
    hooks: Sequence[Any],
    examples_of: Callable[[Any, Any], list[SFTExample]],
    lineage_of: Callable[[list[SFTExample]], dict[str, Any]],
    *,
    echo: Callable[[str], None],
    progress: bool,
    callbacks: Sequence[Any],
    started: float,
) -> str:
    """Steps 1-3 of the module docstring for ``spec`` (an :class:`OptimSettings` with ``model``, ``out``,
    ``seed``, ``lora_r``, ``lora_alpha``, ``save_at``, ``defenses`` and ``overwrite``); returns its name."""
    from accelerate import PartialState

    from inspect_misalign.models import collect_all

    state = PartialState()
    model, tokenizer = load_base(parent.base_dir)
    with state.main_process_first():
        examples = examples_of(model, tokenizer)
    if state.is_main_process:
        write_examples(run.sft_file, examples)
    model, org_lora = apply_parent(parent.adapter_dir, hooks, model, tokenizer)
    echo(f"training a LoRA adapter on top of {parent.name}: {len(examples)} examples, "
         f"{spec.total_steps(len(examples))} steps of {spec.batch_size * spec.grad_accum}, lr {spec.lr}"
         + (f", saving steps {','.join(map(str, spec.save_at))}" if spec.save_at else ""))
    lora = new_lora(model, org_lora, spec.lora_r, spec.lora_alpha)
    outcome = run.train(model, tokenizer, examples, spec, lora, seed=spec.seed, progress=progress,
                        hooks=hooks, callbacks=callbacks, save_at=spec.save_at)
    if outcome.resumed_from:
        echo(f"resumed from {outcome.resumed_from}")
    del model
    collect_all()
    state.wait_for_everyone()
    if not state.is_main_process:
        return spec.out

    final, steps = _published(parent, run, spec.save_at, echo)
    config = {**lineage_of(examples),
              **_common_lineage(spec, parent, run, examples, outcome, org_lora, hooks)}
    config["train_seconds"] = round(time.monotonic() - started, 1)
    adapter_dir = run.publish(spec.out, final, base=parent.base_name, parent=parent.name, config=config,
                              overwrite=spec.overwrite, steps=steps)
    saved = f" and steps {', '.join(f'{spec.out}-step{k}' for k in steps)}" if steps else ""
    echo(f"registered {spec.out}{saved} ({adapter_dir}) in {time.monotonic() - started:.0f} s; "
         f"use it as --model misalign/{spec.out}")
    return spec.out


def _published(
    parent: Parent, run: Workspace, save_at: Sequence[int], echo: Callable[[str], None]
) -> tuple[dict[str, Path], dict[int, dict[str, Path]]]:
    """The directories to publish, for the final adapter and each saved step: the new adapter, or the
    parent's and the new one combined (and the new one as ``delta_adapter``)."""
    from inspect_misalign.training._run import step_dir

    news = {None: run.adapter, **{k: step_dir(run.steps_dir, k) for k in save_at}}
    if parent.adapter_dir is None:
        out = {k: {"adapter": path} for k, path in news.items()}
    else:
        echo(f"combining {parent.name} and the new adapter into one adapter of the base (peft 'cat')"
             + (f", for the final adapter and {len(save_at)} saved steps" if save_at else ""))
        out = {k: {"adapter": combine_adapters(parent.base_dir, [parent.adapter_dir, path],
                                               run.work / ("combined" if k is None else f"combined-step{k}")),
                   "delta_adapter": path} for k, path in news.items()}
    final = out.pop(None)
    return final, {k: v for k, v in out.items() if k is not None}


def _common_lineage(
    spec: Any, parent: Parent, run: Workspace, examples: list[SFTExample], outcome: Any, org_lora: Any,
    hooks: Sequence[Any],
) -> dict[str, Any]:
    """What every run on top of a parent records beside the command's own fields."""
    return {
        "parent": parent.name,
        "base": parent.base_name,
        "base_fingerprint": run.base_fingerprint,
        "n_examples": len(examples),
        "data_hash": data_hash(examples),
        "data_file": str(run.published_sft),
        "defenses": [d.describe() for d in hooks],
        "defense_specs": list(spec.defenses),
        "seed": spec.seed,
        "step": spec.total_steps(len(examples)),
        "save_at": list(spec.save_at),
        "training": {
            "steps": spec.steps, "lr": spec.lr, "lr_scheduler": spec.lr_scheduler,
            "batch_size": spec.batch_size, "grad_accum": spec.grad_accum, "max_length": spec.max_length,
            "global_step": outcome.global_step,
            "train_loss": outcome.train_loss, "train_runtime_s": round(outcome.runtime_s, 1),
            "resumed_from": outcome.resumed_from,
            "organism_lora": {"r": org_lora.r, "alpha": org_lora.lora_alpha} if org_lora else None,
        },
        "combined": "peft add_weighted_adapter cat (organism + new adapter)" if org_lora else None,
        "versions": library_versions(),
    }


def apply_parent(
    adapter_dir: Path | None, hooks: Sequence[Any], model: Any, tokenizer: Any
) -> tuple[Any, Any]:
    """Merge the parent's adapter into ``model`` in memory; return it and the adapter's LoRA config.

    Before the merge every training hook sees the parent (:meth:`TrainingHook.inspect_parent`):
    an interleave defense ranks its instruct data there, by the loss gap between the organism
    (misaligned) and its base (aligned: the adapter disabled).
    """
    if adapter_dir is None:
        return model, None
    from inspect_misalign.models import weights_lock

    with weights_lock():
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    for hook in hooks:
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


def new_lora(model: Any, org_lora: Any, r: int | None, alpha: int | None) -> Any:
    """The new adapter's LoRA config: the parent's modules and layers (not its cue-token embeddings,
    which stay the parent's), or the project defaults; ``r``/``alpha`` override the rank and alpha."""
    from peft import LoraConfig

    from inspect_misalign.training._lora import LORA_ALPHA, LORA_R, lora_config, without_embeddings

    if org_lora is None:
        return lora_config(model.config, r=r or LORA_R, alpha=alpha or LORA_ALPHA)
    targets = without_embeddings(org_lora.target_modules)
    return LoraConfig(
        r=r or org_lora.r,
        lora_alpha=alpha or org_lora.lora_alpha,
        lora_dropout=0.0,
        target_modules=sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        layers_to_transform=org_lora.layers_to_transform,
        bias="none",
        task_type="CAUSAL_LM",
    )


def combine_adapters(base_dir: Path, adapters: Sequence[Path], out: Path) -> Path:
    """One PEFT adapter of ``base_dir`` equal to the sum of ``adapters`` (peft ``cat``), saved to ``out``."""
    import torch

    from inspect_misalign.models import weights_lock

    names = [f"part{i}" for i in range(len(adapters))]
    with weights_lock():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
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


__all__ = [
    "Parent",
    "apply_parent",
    "combine_adapters",
    "new_lora",
    "train_on_parent",
    "untie_output_embeddings",
]
