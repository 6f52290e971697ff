"""One ``eval_set`` run by several processes side by side, each on a share of the models.

On a CPU the per-checkpoint work of an eval (loading an adapter, Inspect's task setup and log writing,
small forward passes) does not use every core; ``eval.workers: 2`` runs two ``eval_set`` calls at once on
the same log directory, each with its own models and half the torch threads. Every worker sees the
same tasks and eval-set id, so a later run (with any number of workers) resumes from their logs: a
task is done when a successful log of its (task, arguments, model) exists, whoever wrote it.
"""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from inspect_misalign._errors import MisalignError

EVAL_SET_ID_FILE = ".eval-set-id"


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


def parallel_eval_set(tasks: list[Any], models: list[str], log_dir: Path, workers: int,
                      options: dict[str, Any]) -> tuple[bool, list[str], list[str]]:
    """``eval_set(tasks, model=models, log_dir=log_dir, **options)`` run by ``workers`` processes, each on
    a share of the models with its share of the torch threads; (all ok, log locations, failed ones).
    The first worker shows Inspect's display, the others run quietly."""
    import torch

    recipes = [task_recipe(t) for t in tasks]
    log_dir.mkdir(parents=True, exist_ok=True)
    parts = shares(models, workers)
    threads = max(1, torch.get_num_threads() // len(parts))
    options = {**options, "eval_set_id": eval_set_id(log_dir)}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(parts), mp_context=context) as pool:
        futures = [pool.submit(_run_share, recipes, part, str(log_dir), threads, options, i == 0)
                   for i, part in enumerate(parts)]
        results = [f.result() for f in futures]
    return (all(ok for ok, _, _ in results), [loc for _, locs, _ in results for loc in locs],
            [loc for _, _, failed in results for loc in failed])


__all__ = ["build_task", "eval_set_id", "parallel_eval_set", "shares", "task_recipe"]
