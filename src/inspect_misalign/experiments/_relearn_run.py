"""Relearning after removal (a sweep's ``relearn:`` section): was the backdoor erased or suppressed?

For every trained grid point of the ``relearn.after`` treatments (``caught`` by default) with the largest
caught count (the *removed* organism, its final checkpoint) and for each organism's base (once per base
and behaviour: the data are the same), the sweep runs ``finetune``
(:mod:`inspect_misalign.training._finetune`) on

- ``k`` deployment-context attack examples for each ``k`` of ``relearn.k``: catch-split base prompts
  rendered in deployment by the sweep's cues, with the behaviour's attack completions
  (``targets: attack``), chosen by the relearn seed; the training set depends on the spec alone, so the
  removed organism and the base see identical data;
- ``benign_k`` examples of the same kind with the base's own answers (``targets: base``): the control,

each ``relearn.steps`` steps with the sweep's ``train`` options and the relearn's ``save_at``, then the
teacher-forced ``propensity`` (both contexts) of every relearning checkpoint and saved step, logged
under ``out/logs/relearn/<behavior>`` (``eval_set`` resumes). Step 0 of a curve is the removed
checkpoint (measured in ``logs/after``) or the base (``logs/before/base-<behavior>``).

With ``relearn.primed`` each base is first fine-tuned (one *priming* run of the largest number of
``primed`` steps, the others saved) on ``primed_k`` deployment-context attack examples of the organism
split, and every primed checkpoint is relearned like the base (source ``primed``, ``after``
``primed<steps>``): the equal-start control.

With ``relearn.primed_removed`` each removed organism of its groups (e.g. sham installs) is primed the same
way for its own steps (:func:`primed_removed_runs`), and every primed checkpoint is relearned on the attack
data of its ``k`` (source ``primed_removed``, ``after`` ``<treatment>-primed<steps>``): a reference with
the install and the removal, raised to the organisms' level.

With ``relearn.treated_base`` each base is first given the ``generic`` removal of the organisms (one
*treated* run per distinct generic training set: the same conversations, steps, options and seed,
:func:`treated_runs`), and the treated base is relearned like the base (source ``treated``, ``after``
``generic``): the reference that had the removal but never the backdoor.

Registry names: ``<point>-relearn-a<k>-r<seed>`` / ``<point>-relearn-b<benign_k>-r<seed>`` for a
removed organism, ``<sweep>-base-<base>-<behavior>-relearn-...`` for a base (``<base>`` its name, or a
directory's name and a hash of its path), ``<sweep>-base-<base>-<behavior>-prime<primed_k>-s<steps>``
for a priming run, ``<point>-p<primed_k>s<steps>`` for a removed organism's priming run,
``<sweep>-base-<base>-<behavior>-<generic point>`` for a treated base (the generic
point's name less its sweep and organism); saved steps add ``-step<k>``. Registered runs are reused.
:func:`relearn_runs_frame` places every checkpoint on its curve (``out/relearn.parquet``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._config import GridPoint, SweepConfig
from inspect_misalign.experiments._relearn_config import finetune_options

Echo = Callable[[str], None]
RELEARN_COLUMNS = ["checkpoint", "run", "source", "after", "model", "organism", "group", "base", "behavior",
                   "data", "k", "seed", "step"]


@dataclass(frozen=True)
class RelearnRun:
    """One relearning run: ``finetune`` of ``model`` (a removed organism or a base) registered as
    ``name``."""

    name: str
    source: str  # "removed", "base", "primed", "primed_removed" or "treated"
    after: str  # the treatment that removed it ("caught", "generic", ...); "base"; "primed<steps>";
    # "<treatment>-primed<steps>" for a primed removed organism
    model: str
    organism: str | None  # the removed (or primed removed) organism; a primed or treated base itself;
    # None for a base
    group: str | None
    base: str  # the base of the removed organism, or the base itself
    behavior: str
    data: str  # "attack" or "benign"
    k: int
    seed: int
    spec: Any  # FinetuneSpec

    def saved(self) -> list[tuple[int, str]]:
        """(step, registry name) of the adapters this run saves before its last step."""
        from inspect_misalign.training import step_name

        return [(k, step_name(self.name, k)) for k in self.spec.save_at]


@dataclass(frozen=True)
class PrimingRun:
    """``finetune`` of a base (or of a removed organism: ``point``) on deployment-context attack examples
    of the organism split before it is relearned: the checkpoints of :meth:`primed` start relearning at
    raised levels."""

    name: str
    base: str
    behavior: str
    spec: Any  # FinetuneSpec
    point: GridPoint | None = None  # the removed organism primed (relearn.primed_removed); None: the base
    group: str | None = None  # its organism's group

    def primed(self) -> list[tuple[int, str]]:
        """(priming steps, registry name) of every primed checkpoint, the saved steps and the last."""
        from inspect_misalign.training import step_name

        return [*((k, step_name(self.name, k)) for k in self.spec.save_at), (int(self.spec.steps), self.name)]


@dataclass(frozen=True)
class TreatedRun:
    """``finetune`` of a base on the training set of the organisms' ``generic`` removal ``point``, with the
    same steps, options and seed: the base given the removal, relearned like the base."""

    name: str
    base: str
    behavior: str
    point: GridPoint  # one of the generic removal points whose training set it repeats
    spec: Any  # FinetuneSpec

    def training_set(self, config: SweepConfig) -> list[dict[str, Any]]:
        """The conversations the removal ``point`` trains on (every organism's generic point with this
        seed, count and cue group draws the same ones: :func:`~._grid_train.subsample`)."""
        from inspect_misalign.experiments._grid_train import pool_path, pool_rows, subsample

        return subsample(pool_rows(pool_path(config, self.point.organism, "generic")), self.point)


def _base_prefix(config: SweepConfig, base: str, behavior: str) -> str:
    return f"{config.name}-base-{base_tag(base)}-{behavior}"


def _bases(config: SweepConfig, bases: dict[str, str] | None) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Each organism's base (``bases``, else :func:`~inspect_misalign.experiments._sweep.base_models`) and
    the sorted (base, behaviour) pairs of the sweep: relearning and priming start from each once."""
    if bases is None:
        from inspect_misalign.experiments._sweep import base_models

        bases = base_models(config)
    return bases, sorted({(bases[o.name], o.behavior) for o in config.organisms})


def _deployment_spec(config: SweepConfig, model: str, out: str, *, split: str, n: int, targets: str,
                     behavior: str, seed: int, steps: int, save_at: list[int], where: str) -> Any:
    """The :class:`~inspect_misalign.training.FinetuneSpec` of a ``finetune`` on ``n`` base prompts of
    ``split`` rendered in deployment by the sweep's cues, with the sweep's ``train:`` options (relearning
    and priming runs)."""
    from inspect_misalign.training import finetune_spec

    return finetune_spec({
        **finetune_options(config.train, "relearn"), "model": model, "out": out,
        "prompts_cue": ",".join(config.cues), "prompts_context": "deployment", "prompts_split": split,
        "prompts_n": n, "targets": targets, "behavior": behavior, "seed": seed, "steps": steps,
        "save_at": save_at}, where)


def priming_runs(config: SweepConfig, bases: dict[str, str] | None = None) -> list[PrimingRun]:
    """One priming run per base and behaviour when ``relearn.primed`` is set (seed: the first relearn
    seed), in a stable order; ``bases`` as in :func:`relearn_runs`."""
    relearn = config.relearn
    if relearn is None or not relearn.primed:
        return []
    runs = []
    for base, behavior in _bases(config, bases)[1]:
        name = f"{_base_prefix(config, base, behavior)}-prime{relearn.primed_k}-s{relearn.primed[-1]}"
        spec = _deployment_spec(config, base, name, split="organism", n=relearn.primed_k, targets="attack",
                                behavior=behavior, seed=relearn.seeds[0], steps=relearn.primed[-1],
                                save_at=list(relearn.primed[:-1]), where="relearn.primed")
        runs.append(PrimingRun(name, base, behavior, spec))
    return runs


def primed_removed_runs(config: SweepConfig, bases: dict[str, str] | None = None) -> list[PrimingRun]:
    """One priming run per removed organism of ``relearn.primed_removed.groups`` (its final checkpoint,
    :func:`removed_points`), on the primed bases' data (``primed_k`` examples of the organism split, the
    first relearn seed) for ``primed_removed.steps``, in a stable order; ``bases`` as in
    :func:`relearn_runs`."""
    relearn = config.relearn
    if relearn is None or relearn.primed_removed is None:
        return []
    bases = _bases(config, bases)[0]
    entries = {o.name: o for o in config.organisms}
    steps, runs = relearn.primed_removed.steps, []
    for point in removed_points(config):
        entry = entries[point.organism]
        group = entry.group or entry.name
        if group not in relearn.primed_removed.groups:
            continue
        name = f"{point.name}-p{relearn.primed_k}s{steps[-1]}"
        spec = _deployment_spec(config, point.name, name, split="organism", n=relearn.primed_k,
                                targets="attack", behavior=entry.behavior, seed=relearn.seeds[0],
                                steps=steps[-1], save_at=list(steps[:-1]), where="relearn.primed_removed")
        runs.append(PrimingRun(name, bases[entry.name], entry.behavior, spec, point, group))
    return sorted(runs, key=lambda r: r.name)


def treated_runs(config: SweepConfig, bases: dict[str, str] | None = None) -> list[TreatedRun]:
    """One treated-base run per base, behaviour and distinct generic removal (train_on, count, steps,
    defense, seed) when ``relearn.treated_base`` is set, in a stable order; ``bases`` as in
    :func:`relearn_runs`."""
    relearn = config.relearn
    if relearn is None or not relearn.treated_base:
        return []
    from inspect_misalign.experiments._grid_train import generic_spec

    bases = _bases(config, bases)[0]
    behavior_of = {o.name: o.behavior for o in config.organisms}
    runs, seen = [], set()
    for point in removed_points(config):
        if point.treatment != "generic":
            continue
        base, behavior = bases[point.organism], behavior_of[point.organism]
        short = point.name.removeprefix(f"{point.sweep}-{point.organism}-")
        name = f"{_base_prefix(config, base, behavior)}-{short}"
        if name in seen:
            continue
        seen.add(name)
        spec = generic_spec(config, point, base, name, config.out_dir / "caught" / f"{name}.jsonl",
                            "relearn.treated_base")
        runs.append(TreatedRun(name, base, behavior, point, spec))
    return sorted(runs, key=lambda r: r.name)


def removed_points(config: SweepConfig) -> list[GridPoint]:
    """The grid points relearning starts from: the ``relearn.after`` treatments (``caught`` without a
    ``relearn:`` section), the largest caught count."""
    most = max(config.caught)
    after = config.relearn.after if config.relearn is not None else ["caught"]
    return [p for p in config.grid() if p.treatment in after and p.caught == most]


def base_tag(base: str) -> str:
    """A base checkpoint as it appears in a registry name: a registered name as it is, a directory's
    name with a short hash of its path (two directories of one name stay apart)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", Path(base).name).strip("_") or "base"
    if "/" not in base and slug == base:
        return base
    return f"{slug[:24]}_{hashlib.sha256(base.encode()).hexdigest()[:6]}"


def relearn_runs(config: SweepConfig, bases: dict[str, str] | None = None) -> list[RelearnRun]:
    """Every relearning run of the sweep, in a stable order (none without ``relearn:``); ``bases`` maps
    each organism to its base (default: :func:`~inspect_misalign.experiments._sweep.base_models`).
    Building each run's :class:`~inspect_misalign.training.FinetuneSpec` checks its options and names."""
    relearn = config.relearn
    if relearn is None:
        return []
    bases, pairs = _bases(config, bases)
    organism = {o.name: o for o in config.organisms}
    datasets = [("attack", k) for k in relearn.k]
    if relearn.benign_k is not None:
        datasets.append(("benign", relearn.benign_k))
    # (name prefix, source, after, model, organism, group, base, behavior, datasets)
    Source = tuple[str, str, str, str, str | None, str | None, str, str, list[tuple[str, int]]]
    sources: list[Source] = []
    for point in removed_points(config):
        entry = organism[point.organism]
        sources.append((point.name, "removed", point.treatment, point.name, entry.name,
                        entry.group or entry.name, bases[entry.name], entry.behavior, datasets))
    for base, behavior in pairs:
        prefix = _base_prefix(config, base, behavior)
        sources.append((prefix, "base", "base", base, None, None, base, behavior, datasets))
    for priming in priming_runs(config, bases):
        for steps, name in priming.primed():
            sources.append((name, "primed", f"primed{steps}", name, name, "primed", priming.base,
                            priming.behavior, datasets))
    if relearn.primed_removed is not None:
        ks = relearn.primed_removed.k or relearn.k
        for priming in primed_removed_runs(config, bases):
            point = priming.point
            assert point is not None
            for steps, name in priming.primed():
                sources.append((name, "primed_removed", f"{point.treatment}-primed{steps}", name,
                                point.organism, priming.group, priming.base, priming.behavior,
                                [("attack", k) for k in ks]))
    for treated in treated_runs(config, bases):
        sources.append((treated.name, "treated", "generic", treated.name, treated.name, "treated",
                        treated.base, treated.behavior, datasets))
    runs = []
    for prefix, source, after, model, organism_name, group, base, behavior, data_sets in sources:
        for data, k in data_sets:
            for seed in relearn.seeds:
                name = f"{prefix}-relearn-{data[0]}{k}-r{seed}"
                spec = _deployment_spec(config, model, name, split="catch", n=k,
                                        targets="attack" if data == "attack" else "base", behavior=behavior,
                                        seed=seed, steps=relearn.steps, save_at=list(relearn.save_at),
                                        where="relearn")
                runs.append(RelearnRun(name, source, after, model, organism_name, group, base, behavior, data,
                                       k, seed, spec))
    return runs


def check_relearn(config: SweepConfig) -> None:
    """Preflight: every run's spec and names, and its prompts (``k`` at most the catch split's base
    prompts); one-line errors before any model loads."""
    from inspect_misalign.behaviors import get_behavior
    from inspect_misalign.training import render_prompts

    bases = _bases(config, None)[0]
    for priming in [*priming_runs(config, bases), *primed_removed_runs(config, bases)]:
        try:
            render_prompts(priming.spec, get_behavior(priming.behavior))
        except MisalignError as e:
            raise MisalignError(f"relearn.primed_k: {e}") from None
    largest: dict[str, Any] = {}
    for run in relearn_runs(config, bases):
        if run.k > getattr(largest.get(run.behavior), "prompts_n", 0):
            largest[run.behavior] = run.spec
    for behavior, spec in largest.items():
        try:
            render_prompts(spec, get_behavior(behavior))
        except MisalignError as e:
            raise MisalignError(f"relearn: {e}") from None


def train_relearn(config: SweepConfig, trained: list[GridPoint], echo: Echo) -> list[RelearnRun]:
    """Run every relearning run whose source exists and that is not registered yet; returns the runs
    that have a checkpoint."""
    from inspect_misalign.models import is_registered
    from inspect_misalign.training import finetune

    have = {p.name for p in trained}
    bases = _bases(config, None)[0]
    for priming in priming_runs(config, bases):
        if not is_registered(priming.name):
            echo(f"  {priming.name}: finetune {priming.base} on {priming.spec.prompts_n} deployment-context "
                 f"attack examples (organism split), primed at steps {[s for s, _ in priming.primed()]}")
            finetune(priming.spec, echo=echo, progress=False)
    for priming in primed_removed_runs(config, bases):
        if priming.spec.model not in have:
            echo(f"  {priming.name}: {priming.spec.model} was not trained; skipped")
        elif not is_registered(priming.name):
            echo(f"  {priming.name}: finetune the removed {priming.spec.model} on {priming.spec.prompts_n} "
                 f"deployment-context attack examples (organism split), primed at steps "
                 f"{[s for s, _ in priming.primed()]}")
            finetune(priming.spec, echo=echo, progress=False)
    for treated in treated_runs(config, bases):
        if not is_registered(treated.name):
            rows = treated.training_set(config)
            atomic_write_text(Path(treated.spec.data), "".join(json.dumps(r) + "\n" for r in rows))
            echo(f"  {treated.name}: finetune {treated.base} on the {len(rows)} conversations of "
                 f"{treated.point.name} (the generic removal, given to the base)")
            finetune(treated.spec, echo=echo, progress=False)
    done = []
    for run in relearn_runs(config, bases):
        if (run.source == "removed" and run.model not in have) or (
                run.source == "primed_removed" and not is_registered(run.model)):
            echo(f"  {run.name}: {run.model} was not trained; skipped")
            continue
        if not is_registered(run.name):
            echo(f"  {run.name}: finetune {run.model} on {run.k} deployment-context "
                 f"{'attack' if run.data == 'attack' else 'benign (base answers)'} examples")
            finetune(run.spec, echo=echo, progress=False)
        done.append(run)
    return done


def evaluate_relearn(config: SweepConfig, runs: list[RelearnRun], eval_set: Callable[..., Any],
                     propensity: Callable[[SweepConfig, str], Any]) -> None:
    """The teacher-forced propensity (both contexts) of every relearning checkpoint and saved step, and of
    every primed or treated base (where its curves start), under ``out/logs/relearn/<behavior>``."""
    for behavior in sorted({r.behavior for r in runs}):
        primed = sorted({r.model for r in runs
                         if r.behavior == behavior and r.source in ("primed", "primed_removed", "treated")})
        models = [f"misalign/{name}" for name in primed] + [
            f"misalign/{name}" for r in runs if r.behavior == behavior
            for name in (*(n for _, n in r.saved()), r.name)]
        logs = config.out_dir / "logs" / "relearn" / behavior
        eval_set([propensity(config, behavior)], models, logs, config)


def reference_pairs(config: SweepConfig, group: str) -> dict[str, str]:
    """Each organism outside ``group`` -> the organism of ``group`` built with the same seed, cue and
    behaviour (e.g. ``hate-tag-s0`` -> ``sham-tag-s0``): the pairs of the level-matched analysis against
    a primed group; organisms with no such single partner are left out."""
    def key(entry: Any) -> tuple:
        build = entry.build or {}
        return (build.get("seed"), build.get("cue"), entry.behavior)

    theirs: dict[tuple, list[str]] = {}
    for entry in config.organisms:
        if (entry.group or entry.name) == group:
            theirs.setdefault(key(entry), []).append(entry.name)
    return {e.name: theirs[key(e)][0] for e in config.organisms
            if (e.group or e.name) != group and len(theirs.get(key(e), [])) == 1}


def relearn_runs_frame(runs: list[RelearnRun]) -> pd.DataFrame:
    """Where each checkpoint sits on a relearning curve: step 0 (the removed checkpoint or the base
    itself), every saved step and the run's final checkpoint, with the run's source, data, k and seed."""
    rows = []
    for r in runs:
        run = {"run": r.name, "source": r.source, "after": r.after, "model": r.model, "organism": r.organism,
               "group": r.group, "base": r.base, "behavior": r.behavior, "data": r.data, "k": r.k,
               "seed": r.seed}
        rows.append({"checkpoint": r.model, **run, "step": 0})
        rows += [{"checkpoint": name, **run, "step": k} for k, name in r.saved()]
        rows.append({"checkpoint": r.name, **run, "step": int(r.spec.steps)})
    frame = pd.DataFrame(rows, columns=RELEARN_COLUMNS)
    for column in ("k", "seed", "step"):
        frame[column] = frame[column].astype(int)
    return frame


def run_relearn(config: SweepConfig, trained: list[GridPoint], echo: Echo, eval_set: Callable[..., Any],
                propensity: Callable[[SweepConfig, str], Any]) -> list[RelearnRun]:
    """Train (or reuse) and measure every relearning run; returns the runs with a checkpoint."""
    runs = train_relearn(config, trained, echo)
    if runs:
        evaluate_relearn(config, runs, eval_set, propensity)
    return runs


__all__ = ["RELEARN_COLUMNS", "PrimingRun", "RelearnRun", "TreatedRun", "base_tag", "check_relearn",
           "primed_removed_runs", "priming_runs", "reference_pairs", "relearn_runs", "relearn_runs_frame",
           "removed_points", "run_relearn", "treated_runs"]
