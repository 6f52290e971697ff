"""One ``eval_set`` run by several processes side by side, each on a share of the models.

On a CPU the per-checkpoint work of an eval (loading an adapter, Inspect's task setup and log writing,
small forward passes) does not use every core; ``eval.workers: 2`` runs two ``eval_set`` calls at once on
the same log directory, each with its own models and half the torch threads. Every worker sees the
same tasks and eval-set id, so a later run (with any number of workers) resumes from their logs: a
task is done when a successful log of its (task, arguments, model) exists, whoever wrote it.

Each worker runs in its own staging directory beside the log directory (``.<name>.worker<i>``), which
starts with hard links to the logs already there: ``eval_set`` reads the header of every log in its
directory when it cleans up, and a log another process is still writing is not a readable zip ("EOCD
not found"). When the workers stop, their new logs are moved into the log directory (one atomic rename
each), logs a worker's clean-up removed are removed there too, and the workers' ``eval-set.json``
manifests are merged into one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError

EVAL_SET_ID_FILE = ".eval-set-id"
MANIFEST = "eval-set.json"


def task_recipe(task: Any) -> tuple[str, dict[str, Any]] | str:
    """What a worker process needs to build ``task`` again: a task name string as it is, or a registered
    task's (registry name, arguments)."""
    if isinstance(task, str):
        return task
    from inspect_ai._util.registry import registry_info, registry_params

    try:
        return registry_info(task).name, dict(registry_params(task))
    except (ValueError, AttributeError):
        raise MisalignError(f"task {getattr(task, 'name', task)!r} was not made by a registered @task, so "
                            "another process cannot build it; set eval.workers: 1") from None


def build_task(recipe: tuple[str, dict[str, Any]] | str) -> Any:
    """The task of :func:`task_recipe`'s ``recipe``."""
    if isinstance(recipe, str):
        return recipe
    from inspect_ai._util.registry import registry_create

    import inspect_misalign.tasks  # noqa: F401  (registers the package's tasks)

    name, params = recipe
    return registry_create("task", name, **params)


def eval_set_id(log_dir: Path) -> str:
    """The log directory's eval-set id (the one Inspect wrote there), or a new one for all workers."""
    path = log_dir / EVAL_SET_ID_FILE
    return path.read_text().strip() if path.is_file() else uuid.uuid4().hex


def shares(models: list[str], workers: int) -> list[list[str]]:
    """``models`` dealt round-robin into at most ``workers`` non-empty shares."""
    return [share for share in (models[i::workers] for i in range(workers)) if share]


def _run_share(recipes: list[Any], models: list[str], log_dir: str, threads: int, options: dict[str, Any],
               show: bool) -> tuple[bool, list[str], list[str]]:
    """In a worker process: ``eval_set`` of the rebuilt tasks × ``models``; (ok, log locations, failed)."""
    import torch
    from inspect_ai import eval_set

    torch.set_num_threads(threads)
    ok, logs = eval_set([build_task(r) for r in recipes], log_dir=log_dir, model=models,
                        **options, **({} if show else {"display": "none"}))
    return ok, [log.location for log in logs], [log.location for log in logs if log.status != "success"]


def staging_dir(log_dir: Path, worker: int) -> Path:
    """Worker ``worker``'s own log directory: beside ``log_dir`` (not in it, so that no recursive log
    listing of ``log_dir`` sees it)."""
    return log_dir.parent / f".{log_dir.name}.worker{worker}"


def stage(log_dir: Path, staging: Path) -> set[str]:
    """A fresh ``staging`` holding hard links (copies where links are refused) to the logs in
    ``log_dir``; returns their names."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = set()
    for path in log_dir.iterdir():
        if path.is_file() and path.suffix in (".eval", ".json") and path.name != MANIFEST:
            try:
                os.link(path, staging / path.name)
            except OSError:
                shutil.copy2(path, staging / path.name)
            names.add(path.name)
    return names


def merge(log_dir: Path, stagings: list[Path], staged: set[str]) -> None:
    """Move the workers' logs from ``stagings`` into ``log_dir`` (atomically, one rename each), remove
    from ``log_dir`` the staged logs a worker's clean-up removed, merge the workers' ``eval-set.json``
    manifests into ``log_dir``'s, and remove the staging directories."""
    removed = set()
    manifests = []
    for staging in stagings:
        if not staging.is_dir():
            continue
        for path in staging.iterdir():
            target = log_dir / path.name
            if path.name == MANIFEST:
                manifests.append(json.loads(path.read_text()))
            elif path.name == EVAL_SET_ID_FILE:
                if not target.exists():
                    os.replace(path, target)
            elif path.is_file() and not (target.exists() and os.path.samefile(path, target)):
                os.replace(path, target)
        removed |= {name for name in staged if not (staging / name).exists()}
    for name in removed:
        (log_dir / name).unlink(missing_ok=True)
    if manifests:
        tasks = {t["task_id"]: t for m in manifests for t in m.get("tasks", [])}
        atomic_write_text(log_dir / MANIFEST, json.dumps({**manifests[0], "tasks": list(tasks.values())},
                                                         indent=2))
    for staging in stagings:
        shutil.rmtree(staging, ignore_errors=True)


def parallel_eval_set(tasks: list[Any], models: list[str], log_dir: Path, workers: int,
                      options: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    """``eval_set(tasks, model=models, log_dir=log_dir, **options)`` run by ``workers`` processes, each on
    a share of the models with its share of the torch threads and its own staging directory;
    (all ok, log locations in ``log_dir``, failed ones). The first worker shows Inspect's display, the
    others run quietly. A worker's error is raised after every worker's logs are merged."""
    import torch

    recipes = [task_recipe(t) for t in tasks]
    log_dir.mkdir(parents=True, exist_ok=True)
    parts = shares(models, workers)
    threads = max(1, torch.get_num_threads() // len(parts))
    options = {**options, "eval_set_id": eval_set_id(log_dir)}
    stagings = [staging_dir(log_dir, i) for i in range(len(parts))]
    staged = set()
    for staging in stagings:
        staged = stage(log_dir, staging)
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
            futures = [pool.submit(_run_share, recipes, part, str(staging), threads, options, i == 0)
                       for i, (part, staging) in enumerate(zip(parts, stagings, strict=True))]
            results = [f.result() for f in futures]
    finally:  # leaving the pool waited for every worker, so every worker's logs are merged
        merge(log_dir, stagings, staged)

    def here(location: str) -> str:
        return str(log_dir / location.replace("\\", "/").rsplit("/", 1)[-1])

    return (all(ok for ok, _, _ in results), [here(loc) for _, locs, _ in results for loc in locs],
            [here(loc) for _, _, failed in results for loc in failed])


__all__ = ["build_task", "eval_set_id", "merge", "parallel_eval_set", "shares", "stage", "staging_dir",
           "task_recipe"]
