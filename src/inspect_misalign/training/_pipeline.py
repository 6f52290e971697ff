"""What every training command shares: opening a run, the base model, the work directory, the LoRA run,
and publish-and-register. Each command (``organism``, ``train``, and the ``finetune`` to come) keeps
only what is its own: its data, its extra steps (a gate, combining adapters) and its manifest.

A run goes::

    base = check_run(name, overwrite, base_name, "--base")   # before anything loads (one-line errors)
    run = Workspace.open("organisms", name, directory, base_name, base.base_dir, identity)
    model, tokenizer = load_base(base_dir)
    answers = run.base_answers(model, tokenizer, prompts, max_new_tokens)   # greedy, cached on disk
    outcome = run.train(model, tokenizer, examples, settings, peft_config, seed=...)
    run.publish(name, {"adapter": run.adapter}, base=..., parent=..., config=...)

``Workspace.open`` keys ``work`` by a hash of everything that changes the trained adapter (the
command's ``identity``, the base's content fingerprint and the package version), so running the
same command again resumes there (the SFT set, the latest complete checkpoint, a finished adapter);
``publish`` copies atomically, registers, and only then deletes the work directory: a failed run
registers nothing. A run with saved steps (``train(..., save_at=[1, 2, 4])``) also publishes each
step's directories under ``root/steps/step<k>`` and registers them as ``<name>-step<k>``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspect_misalign import __version__
from inspect_misalign._errors import MisalignError
from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._settings import OptimSettings

LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "inspect_ai")


def check_run(
    name: str, overwrite: bool, model: str, flag: str, saved: Sequence[str] = (), *, kind: str | None = None,
    directory: Path | None = None,
) -> Any:
    """Open a run's checks: refuse a registry ``name`` (or a ``saved`` step's name) that is taken unless
    ``overwrite`` (its syntax is the spec's check), and resolve the checkpoint ``model`` the run starts
    from (a :class:`~inspect_misalign.models.ResolvedCheckpoint`), with a one-line error naming ``flag``.
    With ``kind``, also check the run's root (``directory``, else the default) with :func:`check_root`."""
    from inspect_misalign.models import (
        CheckpointError,
        UnknownModelError,
        is_registered,
        resolve,
        resolve_checkpoint,
    )

    if is_registered(name) and not overwrite:
        cleaned = remove_published_work(name)
        raise MisalignError(f"--out {name!r} is already registered (at {resolve(name).path}); "
                            "pick another name or pass --overwrite"
                            + ("; removed the work directory its interrupted publication left" if cleaned
                               else ""))
    for taken in saved:
        if is_registered(taken) and not overwrite:
            raise MisalignError(f"saved step {taken!r} is already registered (at {resolve(taken).path}); "
                                "pick another --out or pass --overwrite")
    if kind is not None:
        check_root(default_root(kind, name, directory), name, overwrite)
    try:
        return resolve_checkpoint(model)
    except (CheckpointError, UnknownModelError, FileNotFoundError) as e:
        raise MisalignError(f"{flag} {model!r}: {e}") from None


RUN_FILES = ("work", "adapter", "delta_adapter", "sft.jsonl", "gate_logs", "steps")
"""What a run writes in its root (and, with a leading dot, its temp files there): a root holding only
these is this run's to resume or replace."""


def check_root(root: Path, name: str, overwrite: bool) -> None:
    """Refuse, unless ``overwrite``, a run root (``--dir``) that holds a checkpoint of another name
    (registered in or around it, or with its manifest there) or files no run of ``name`` wrote; a
    root that is a file is refused always. A root holding only :data:`RUN_FILES` (an interrupted run
    of this name) is resumed."""
    from inspect_misalign.models import MANIFEST_FILE, list_models

    if root.exists() and not root.is_dir():
        raise MisalignError(f"--dir {root} is a file; give a directory for the run's files")
    if not root.is_dir() or overwrite:
        return
    here = root.resolve()
    others = sorted(m.name for m in list_models() if m.name != name and _nested(Path(m.path).resolve(), here))
    manifest = root / "adapter" / MANIFEST_FILE
    if not others and manifest.is_file():
        try:
            owner = json.loads(manifest.read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            owner = "?"
        others = [] if owner == name else [str(owner)]
    if others:
        raise MisalignError(f"--dir {root} holds the checkpoint of {', '.join(map(repr, others))}; pick "
                            "another --dir (or pass --overwrite to replace its files)")
    foreign = sorted(e.name for e in root.iterdir()
                     if e.name.lstrip(".").split(".", 1)[0] not in {f.split(".")[0] for f in RUN_FILES})
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise MisalignError(f"--dir {root} is not empty ({shown}); give a new or empty directory (or pass "
                            "--overwrite to write into it anyway)")


def _nested(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are the same directory or one holds the other."""
    return a == b or b in a.parents or a in b.parents


def remove_published_work(name: str) -> bool:
    """Delete the work directory that the registered run ``name`` left when it was killed after
    registering (its manifest records which, ``work_key``); True if there was one."""
    from inspect_misalign.models import resolve

    key = resolve(name).config.get("work_key")
    work = Path(resolve(name).path).parent / "work"
    if not isinstance(key, str) or not key or not (work / key).is_dir():
        return False
    shutil.rmtree(work / key, ignore_errors=True)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()
    return True


def _import_training_stack() -> None:
    """Import what training uses from transformers, peft and trl now, under the weights lock, so that
    no later import of theirs runs beside a provider's background load on another thread."""
    import peft  # noqa: F401
    from transformers import TrainerCallback  # noqa: F401
    from trl import SFTConfig, SFTTrainer  # noqa: F401


def load_base(base_dir: Path) -> tuple[Any, Any]:
    """The base model in fp32 (on CUDA when there is one; the trainer places it) and its tokenizer."""
    import torch

    from inspect_misalign.models import weights_lock

    with weights_lock():  # not beside a provider's background load (models._weights_lock)
        _import_training_stack()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from inspect_misalign.models import silence_known_warnings

        silence_known_warnings()  # peft's tied-embedding note and transformers' deprecation, as at inference
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), tokenizer


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a trained checkpoint."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"inspect_misalign": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def work_key(identity: Mapping[str, Any], base_fingerprint: str) -> str:
    """Hash of a run's ``identity``, its base's fingerprint and the package version."""
    payload = {**identity, "base": base_fingerprint, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_root(kind: str, name: str, directory: Path | None) -> Path:
    """Where a run's files go: ``directory``, else ``<registry home>/<kind>/<name>``."""
    from inspect_misalign.models import registry_home

    return Path(directory) if directory else registry_home() / kind / name


@dataclass(frozen=True)
class Workspace:
    """A run's directories: ``root`` (what is published) and ``work`` (this run's resumable state)."""

    root: Path
    work: Path
    base_fingerprint: str

    @classmethod
    def open(
        cls, kind: str, name: str, directory: Path | None, base_name: str, base_dir: Path,
        identity: Mapping[str, Any],
    ) -> Workspace:
        """The run ``name`` of ``kind`` (its root: ``directory``, else ``<registry home>/<kind>/<name>``):
        convert the default model if it is the base, fingerprint the base, create ``work``."""
        from inspect_misalign.models import ensure_default_model
        from inspect_misalign.training._generate import base_fingerprint

        if base_name == "default":
            ensure_default_model()
        fingerprint = base_fingerprint(base_dir)
        root = default_root(kind, name, directory)
        work = root / "work" / work_key(identity, fingerprint)
        work.mkdir(parents=True, exist_ok=True)
        return cls(root, work, fingerprint)

    @property
    def adapter(self) -> Path:
        """Where the trained adapter is saved (a finished run leaves it there)."""
        return self.work / "adapter"

    @property
    def steps_dir(self) -> Path:
        """Where the adapters of saved steps go (``step<k>`` each)."""
        return self.work / "steps"

    @property
    def sft_file(self) -> Path:
        """The run's training set."""
        return self.work / "sft.jsonl"

    @property
    def published_sft(self) -> Path:
        """Where :meth:`publish` puts the training set (the manifest's ``data_file``)."""
        return self.root / "sft.jsonl"

    def base_answers(
        self, model: Any, tokenizer: Any, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int,
        progress: bool = True,
    ) -> list[str]:
        """The base's greedy answers to ``prompts``, cached per base, settings and prompt."""
        from inspect_misalign.models import cache_root
        from inspect_misalign.training._generate import GenerationSettings, cached_generate

        settings = GenerationSettings(max_new_tokens=max_new_tokens)
        cache_file = cache_root() / "answers" / f"{self.base_fingerprint}-{settings.key()}.jsonl"
        return cached_generate(model, tokenizer, list(prompts), settings, cache_file, progress=progress)

    def train(
        self, model: Any, tokenizer: Any, examples: Sequence[SFTExample], settings: OptimSettings,
        peft_config: Any, *, seed: int, progress: bool = True, hooks: Sequence[Any] = (),
        callbacks: Sequence[Any] = (), sequential: bool = False, save_at: Sequence[int] = (),
    ) -> Any:
        """Train a LoRA adapter into :attr:`adapter` (resuming from ``work/trainer``), and the adapters of
        the ``save_at`` steps into :attr:`steps_dir`; a :class:`~inspect_misalign.training.TrainOutcome`."""
        from inspect_misalign.training._run import train_adapter

        output_dir = self.work / "trainer"
        config = settings.sft_config(output_dir, seed=seed, progress=progress, sequential=sequential)
        return train_adapter(model, tokenizer, examples, config, peft_config, self.adapter, hooks=hooks,
                             callbacks=callbacks, save_at=save_at, steps_dir=self.steps_dir)

    def publish(
        self, name: str, directories: Mapping[str, Path], *, base: str, parent: str, config: dict[str, Any],
        metrics: dict[str, Any] | None = None, overwrite: bool = False,
        steps: Mapping[int, Mapping[str, Path]] | None = None,
    ) -> Path:
        """Copy each of ``directories`` to ``root/<key>`` (each saved step's to ``root/steps/step<k>/<key>``)
        and the SFT set to :attr:`published_sft`, each atomically; register each step's ``adapter`` as
        ``<name>-step<k>`` (``config`` plus ``step: k`` and ``saved_from: name``), then ``root/adapter``
        as ``name``, then delete the work directory. Returns the registered adapter directory. Should a
        registration fail, the names this call registered are removed again."""
        from inspect_misalign.models import register, unregister
        from inspect_misalign.training._run import copy_dir_atomically
        from inspect_misalign.training._steps import step_name

        steps = steps or {}
        for key in [*directories, self.published_sft.name]:  # what a killed publication of this run left
            for stale in self.root.glob(f".{key}.*"):
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink(missing_ok=True)
        for key, path in directories.items():
            copy_dir_atomically(path, self.root / key)
        for step, parts in steps.items():
            for key, path in parts.items():
                copy_dir_atomically(path, self.root / "steps" / f"step{step}" / key)
        tmp = self.published_sft.with_name(f".{self.published_sft.name}.tmp")
        try:
            shutil.copyfile(self.sft_file, tmp)
            tmp.replace(self.published_sft)
        finally:
            tmp.unlink(missing_ok=True)
        # the manifest names the work directory, so a rerun after a kill below can delete it
        config = {**config, "work_key": self.work.name}
        entries = [(step_name(name, k), self.root / "steps" / f"step{k}" / "adapter",
                    {**config, "step": k, "saved_from": name}) for k in steps]
        entries.append((name, self.root / "adapter", config))
        done: list[str] = []
        try:
            for entry, adapter, entry_config in entries:
                register(entry, adapter, base=base, adapter=True, parent=parent, config=entry_config,
                         metrics=metrics if entry == name else None, overwrite=overwrite)
                done.append(entry)
        except BaseException:
            for entry in done:
                unregister(entry)
            raise
        shutil.rmtree(self.work, ignore_errors=True)
        if (self.root / "work").is_dir() and not any((self.root / "work").iterdir()):
            (self.root / "work").rmdir()
        return self.root / "adapter"


__all__ = [
    "RUN_FILES",
    "Workspace",
    "check_root",
    "check_run",
    "default_root",
    "library_versions",
    "load_base",
    "remove_published_work",
    "work_key",
]
