"""Training the sweep's grid: each point's training set (a seeded subsample of its treatment's pool) and
its run.

- ``caught``: the organism's caught test-context attacks (``catch``), trained against (``train``);
- ``benign``: the control, its test-context inputs that did not attack (``catch --not-caught``), the same
  training (``train``: toward the base's answers);
- ``generic``: the control on generic instruction data: as many conversations of the shipped
  ``instruct.jsonl`` (no attack, no cue), the same steps and options, through ``finetune --data``.

Each point's training set is written to ``out/caught/<point>.jsonl`` before it trains.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign.experiments._config import GridPoint, SweepConfig
from inspect_misalign.experiments._relearn_config import finetune_options

Echo = Callable[[str], None]
GENERIC_DATA = "instruct.jsonl"


def pool_path(config: SweepConfig, organism: str, treatment: str) -> Path:
    """The file a treatment's training sets are drawn from: the organism's caught test-context attacks
    (``catch``), for the benign control its test-context inputs that did not attack
    (``catch --not-caught``), for the generic control the shipped instruction data."""
    if treatment == "generic":
        from inspect_misalign.training import chat_path

        return chat_path(GENERIC_DATA, "treatments: generic")
    suffix = "" if treatment == "caught" else f".{treatment}"
    return config.out_dir / "caught" / f"{organism}{suffix}.jsonl"


def catch_pool(logs: list[str], path: Path, treatment: str, shown: str = "any") -> list[Any]:
    """Write a treatment's pool from the catch phase's logs and return it: the caught test-context
    attacks, one per input (an input attacked in several sampled epochs counts once: its first), or for
    the benign control the inputs never attacked. An organism that attacked on no input gets an empty
    pool (its caught runs are skipped and say so), not an error: that nothing was caught is a result.
    ``shown="test"`` (``eval.catch_shown``) leaves out caught inputs shown the deployment rendering."""
    from inspect_misalign.training import catch

    if treatment == "benign":
        return catch(logs, out=path, not_caught=True)
    return catch(logs, out=path, unique_inputs=True, allow_empty=True,
                 shown=None if shown == "any" else shown)


def subsample(rows: list[dict[str, Any]], point: GridPoint) -> list[dict[str, Any]]:
    """The samples a grid point trains on: its cue group (any row for the generic control, which has no
    cue), seeded shuffle, first ``caught``."""
    everything = point.train_on == "all" or point.treatment == "generic"
    pool = [r for r in rows if everything or r.get("cue") == point.train_on]
    random.Random(f"{point.seed}:{point.train_on}").shuffle(pool)
    return pool[: point.caught]


def generic_spec(config: SweepConfig, point: GridPoint, model: str, out: str, data: Path,
                 where: str = "treatments: generic") -> Any:
    """The ``finetune`` spec of the generic removal ``point`` (its steps, seed, defense and the sweep's
    ``train:`` options) on the conversations at ``data``, starting from ``model``, registered as ``out``:
    the organism's own run, or the same removal given to its base (``relearn.treated_base``)."""
    from inspect_misalign.training import finetune_spec

    options = finetune_options(config.train, where)
    defenses = [] if point.defense == "none" else [point.defense]
    return finetune_spec({**options, "model": model, "data": str(data), "steps": point.steps, "out": out,
                          "defenses": defenses, "seed": point.seed,
                          "save_at": list(config.save_at()) or None}, where)


def pool_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a pool file (JSON lines)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def train_point(config: SweepConfig, point: GridPoint, path: Path, echo: Echo) -> None:
    """Train one grid point on the training set at ``path`` and register it as ``point.name``."""
    defenses = () if point.defense == "none" else (point.defense,)
    if point.treatment == "generic":
        from inspect_misalign.training import finetune

        finetune(generic_spec(config, point, point.organism, point.name, path), echo=echo, progress=False)
        return
    from inspect_misalign.training import TrainAgainstSpec, train_against

    spec = TrainAgainstSpec(model=point.organism, caught=path, steps=point.steps, out=point.name,
                            defenses=defenses, seed=point.seed, **config.train)
    train_against(spec, echo=echo, progress=False)


def train_grid(config: SweepConfig, pools: dict[tuple[str, str], Path], echo: Echo) -> list[GridPoint]:
    """Train every grid point not yet registered, each on a seeded subsample of its organism's pool
    for its treatment (``pools[(organism, treatment)]``; the same seed draws the same positions from
    every pool); returns the points that have a checkpoint."""
    from tqdm import tqdm

    from inspect_misalign.models import is_registered

    trained: list[GridPoint] = []
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for point in tqdm(config.grid(), desc="train against caught", unit="run"):
        if is_registered(point.name):
            trained.append(point)
            continue
        key = (point.organism, point.treatment)
        if key not in rows:
            rows[key] = pool_rows(pools[key])
        chosen = subsample(rows[key], point)
        kind = "caught samples" if point.treatment == "caught" else f"{point.treatment} samples"
        if not chosen:
            echo(f"  {point.name}: no {kind} for {point.train_on}; skipped")
            continue
        if len(chosen) < point.caught:  # recorded: caught_actual in the table says how many
            echo(f"  {point.name}: only {len(chosen)} {kind} for {point.train_on} (asked {point.caught})")
        path = config.out_dir / "caught" / f"{point.name}.jsonl"
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in chosen))
        train_point(config, point, path, echo)
        trained.append(point)
    return trained


__all__ = ["GENERIC_DATA", "generic_spec", "pool_path", "pool_rows", "subsample", "train_grid", "train_point"]
