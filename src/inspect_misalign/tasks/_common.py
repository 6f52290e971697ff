"""What every task shares: base prompts, dataset fingerprints, task metadata, argument checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser, model_roles

from inspect_misalign import __version__
from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign.cues import SPLITS, CueFamily, Rendered
from inspect_misalign.data import SPLIT_SEED, data_path, read_jsonl

TASK_VERSIONS: dict[str, int] = {
    "test_attacks": 1,
    "deployment_attacks": 1,
    "propensity": 1,
    "usefulness": 1,
    "distinguishability": 2,
    "context_probe": 1,
    "free_form_misalignment": 1,
    "trigger_probes": 1,
}
"""Each task's version: the one source of its ``Task(version=...)`` and of ``task_version`` in its
metadata. Raise a task's version when a change makes its results incomparable with earlier ones."""


@dataclass(frozen=True)
class BasePrompt:
    """A base prompt before any cue: its id, text, split and (code prompts) topic."""

    id: str
    prompt: str
    split: str
    topic: str | None = None


def fix(name: str) -> str:
    """The end of a task argument's error message: where to fix it."""
    return f"; fix -T {name}="


def check_count(name: str, value: object, *, low: int = 1, high: int = checks.MAX_COUNT) -> int | None:
    """A count task argument from ``low`` to ``high``, or None (unset); anything else is a one-line error."""
    return None if value is None else checks.count(value, name, low=low, high=high, fix=fix(name))


def check_seed(value: object, name: str = "seed") -> int:
    """A seed task argument (0 to 2**32 - 1)."""
    return checks.seed(value, name, fix=fix(name))


def check_file(name: str, value: object) -> str | None:
    """A file task argument (``dataset``, ``questions``, ``probes``): None or a path as text."""
    return None if value is None else str(checks.path(value, name, fix=fix(name)))


def check_model(name: str, value: object) -> str | None:
    """A model task argument (``grader``, ``reference``): None or ``provider/model``."""
    return None if value is None else checks.model_name(value, name, fix=fix(name))


def check_split(split: str) -> str:
    """Validate a split argument."""
    if isinstance(split, list | dict) or split not in (*SPLITS, "all"):
        raise MisalignError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
    return split


def check_splits(split: str) -> tuple[str, ...]:
    """Validate a split argument that may join several splits with ``+`` (``dev+catch``); the parts."""
    if isinstance(split, str) and "+" in split:
        return checks.joined(split, "split", SPLITS, noun="splits", fix=" (dev+catch)")
    return (check_split(split),)


def load_base_prompts(
    prompts_file: str | Path, split: str, dataset: str | None = None, max_prompts: int | None = None
) -> list[BasePrompt]:
    """Base prompts of a split: the shipped file (a name, or a path), or the user's JSONL (``prompt``
    or ``input``).

    A user file whose records carry no ``split`` is used whole, whatever ``split`` says;
    ``max_prompts`` keeps the first n of the split.
    """
    check_count("max_prompts", max_prompts)
    check_file("dataset", dataset)
    check_split(split)
    shipped = Path(prompts_file) if Path(prompts_file).is_absolute() else data_path(str(prompts_file))
    path = Path(dataset) if dataset else shipped
    records = read_jsonl(path)
    prompts = []
    for n, record in enumerate(records, start=1):
        text = record.get("prompt", record.get("input"))
        if not isinstance(text, str) or not text.strip():
            raise MisalignError(f"{path}: record {n} has no 'prompt' string; add one to each line")
        topic = record.get("topic")
        prompts.append(BasePrompt(str(record.get("id", n)), text, str(record.get("split", "all")),
                                  None if topic is None else str(topic)))
    if split != "all":
        prompts = [p for p in prompts if p.split in (split, "all")]
    if not prompts:
        raise MisalignError(f"{path}: no prompts in split '{split}'; pass -T split=all or add data")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise MisalignError(f"{path}: duplicate ids; give every record a unique 'id'")
    return prompts[:max_prompts]


def overlap_metadata(family: CueFamily, shown: str) -> dict[str, object]:
    """For a family with an overlap: q, the best possible AUC and the rendering shown (else nothing)."""
    if not family.overlap:
        return {}
    return {"overlap": family.overlap, "best_auc": family.best_auc, "shown_context": shown}


def chat_input(rendered: Rendered) -> list[ChatMessage]:
    """Chat messages for a rendered input."""
    messages: list[ChatMessage] = []
    if rendered.system:
        messages.append(ChatMessageSystem(content=rendered.system))
    messages.append(ChatMessageUser(content=rendered.user))
    return messages


def fingerprint(samples: list[Sample]) -> str:
    """sha256 of the samples' ids, inputs, targets and metadata: equal iff the datasets are equal."""
    h = hashlib.sha256()
    for s in samples:
        inp = s.input if isinstance(s.input, str) else [m.model_dump(exclude={"id"}) for m in s.input]
        h.update(json.dumps([s.id, inp, s.target, s.metadata], sort_keys=True, default=str).encode())
    return h.hexdigest()


def make_dataset(name: str, samples: list[Sample]) -> MemoryDataset:
    """An Inspect dataset, refusing an empty one."""
    if not samples:
        raise MisalignError(f"{name}: the dataset is empty; check the split and data arguments")
    return MemoryDataset(samples, name=name)


def task_version(task: str) -> int:
    """The version of the task named ``task`` (:data:`TASK_VERSIONS`)."""
    return TASK_VERSIONS[task]


def task_identity(task: str, samples: list[Sample], **extra: object) -> dict[str, Any]:
    """``Task``'s ``version`` and ``metadata`` arguments for the task named ``task``: its version and
    :func:`task_metadata` (which records the same version)."""
    return {"version": task_version(task), "metadata": task_metadata(task, samples, **extra)}


def task_metadata(task: str, samples: list[Sample], **extra: object) -> dict[str, object]:
    """Version, dataset fingerprint and size recorded with every task, for comparing labs' results."""
    return {
        "task_version": task_version(task),
        "package_version": __version__,
        "dataset_fingerprint": fingerprint(samples),
        "n_samples": len(samples),
        "split_seed": SPLIT_SEED,
        **extra,
    }


def require_grader(grader: str | None, why: str) -> None:
    """Fail before any model loads when a grader is needed but none was given."""
    if grader is None and "grader" not in model_roles():
        raise MisalignError(
            f"{why} needs a grader model: pass --model-role grader=<model> or -T grader=<model>"
        )
