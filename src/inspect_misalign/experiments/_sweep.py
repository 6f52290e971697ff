"""Run a sweep: organisms → evals before → catch → train the grid → evals after → table, figures, report.

Evaluations go through Inspect's ``eval_set`` (one log directory per phase), so running the same
sweep again skips every finished eval; trained checkpoints already registered are not trained
again. Everything lands under the sweep's ``out`` directory::

    out/config.yaml                 the validated config
    out/logs/{before,catch,after,steps,usefulness,relearn}/   Inspect logs (inspect view --log-dir out/logs)
    out/caught/<organism>.jsonl     caught test-context attacks (inspect-misalign catch)
    out/caught/<point>.jsonl        the subsample each grid point trained on
    out/results.parquet, .csv       the tidy table (experiments._sweep_table.sweep_table)
    out/samples.parquet             one row per model x task x cue x context x base prompt
    out/runs.parquet                each checkpoint's place on a dose-response curve (experiments._dose)
    out/relearn.parquet             with relearn: each checkpoint's place on a relearning curve
                                    (experiments._relearn_run); samples.parquet holds their rows too
    out/figures/*.png, out/report.html
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._config import SweepConfig
from inspect_misalign.experiments._grid_train import catch_pool, pool_path, train_grid
from inspect_misalign.experiments._parallel_eval import parallel_eval_set
from inspect_misalign.experiments._retained import model_name
from inspect_misalign.experiments._sweep_table import runs_frame, sweep_table
from inspect_misalign.results import tables

Echo = Callable[[str], None]


def preflight(config: SweepConfig) -> None:
    """Check everything checkable before any work: cues, defenses, organisms' build options, usefulness
    task."""
    from inspect_misalign.cues import load_cues
    from inspect_misalign.models import is_registered
    from inspect_misalign.training import organism_spec, parse_defense

    for cue in config.cues:
        load_cues(cue)
    from inspect_misalign.tasks import trigger_probes

    for cue in config.eval.trigger_probes:
        trigger_probes(cue=cue, max_prompts=1)  # one family, with probes: a one-line error otherwise

    for defense in config.defenses:
        if defense != "none":
            parse_defense(defense)
    check_usefulness_task(config)
    if config.eval.distinguishability:
        asked_models(config)
    for organism in config.organisms:
        if organism.build is None and not is_registered(organism.name):
            raise MisalignError(
                f"organism {organism.name!r} is not registered and has no 'build' options; "
                "build it with inspect-misalign organism or add build: {...} to the config"
            )
        if organism.build is not None:
            organism_spec(organism.name, organism.build)  # the build options' own checks
        if organism.build is not None and is_registered(organism.name):
            check_build_matches(organism.name, organism.build)
    if "generic" in config.treatments:
        pool_path(config, "", "generic")  # the shipped instruction data is there
    if config.relearn is not None:
        from inspect_misalign.experiments._relearn_run import check_relearn

        check_relearn(config)


def check_usefulness_task(config: SweepConfig) -> None:
    """Build the usefulness task with ``usefulness_args`` when it is one of this package's (another
    package's task is built only when it runs): its arguments' one-line errors come now, not after
    every model has been evaluated."""
    task = config.eval.usefulness
    if not task or not task.startswith("inspect_misalign/"):
        return
    import inspect_misalign.tasks as tasks

    function = getattr(tasks, task.removeprefix("inspect_misalign/"), None)
    if function is None:
        raise MisalignError(f"eval.usefulness: no task {task!r} in inspect_misalign; see its task list")
    try:
        function(**config.eval.usefulness_args)
    except (TypeError, MisalignError) as e:  # TypeError: an argument the task does not take
        raise MisalignError(f"eval.usefulness_args: {e}") from None


def check_build_matches(name: str, build: dict[str, Any]) -> None:
    """Refuse to reuse a registered organism whose recorded options differ from the config's ``build``.

    Only scalar options the manifest records (cue, behavior, leak, seed, prompts, ...) are compared.
    """
    from inspect_misalign.models import resolve

    recorded = resolve(name).config
    for key, wanted in build.items():
        if isinstance(wanted, dict | list) or key not in recorded or key == "base":
            continue
        if recorded[key] != wanted:
            raise MisalignError(
                f"organism {name!r} is registered with {key}={recorded[key]!r} but the config asks "
                f"{key}={wanted!r}; rename the organism in the config, or delete it to rebuild"
            )


def _eval_set(tasks: list[Any], models: list[str], log_dir: Path, config: SweepConfig,
              task_args: dict[str, Any] | None = None, sampled: bool = False,
              model_roles: dict[str, Any] | None = None, catching: bool = False) -> list[str]:
    """``eval_set`` of ``tasks`` × ``models`` (with ``model_roles``, e.g. a grader); returns the log
    locations; raises if any failed.

    With ``eval.workers`` > 1 the models are shared out to that many processes
    (:mod:`~inspect_misalign.experiments._parallel_eval`). ``sampled`` runs them with the config's
    attack-eval epochs, temperature and seed; ``catching`` with the catch phase's (``catch_epochs``,
    ``catch_temperature``).
    """
    from inspect_ai import eval_set

    sampling: dict[str, Any] = {}
    if sampled and config.eval.temperature:
        sampling = {"epochs": config.eval.epochs, "temperature": config.eval.temperature,
                    "seed": config.eval.seed}
    if catching and config.eval.catch_temperature:
        sampling = {"epochs": config.eval.catch_epochs, "temperature": config.eval.catch_temperature,
                    "seed": config.eval.seed}
    options: dict[str, Any] = dict(
        model_args={"batch_size": config.eval.batch_size},
        task_args=task_args or {},
        model_roles=model_roles or None,
        max_connections=config.eval.batch_size,
        **sampling,
        max_tasks=1,
        log_dir_allow_dirty=True,
        retry_attempts=1,
    )
    workers = min(getattr(config.eval, "workers", 1), len(models))
    if workers > 1 and all(isinstance(m, str) for m in (model_roles or {}).values()):
        ok, locations, failed = parallel_eval_set(tasks, models, log_dir, workers, options)
    else:
        ok, logs = eval_set(tasks, log_dir=str(log_dir), model=models, **options)
        locations = [log.location for log in logs]
        failed = [log.location for log in logs if log.status != "success"]
    if not ok:
        raise MisalignError(f"evals failed in {log_dir} ({', '.join(failed) or 'see logs'}); "
                            f"inspect view --log-dir {log_dir}, then run the sweep again to resume")
    return locations


def _attack_tasks(config: SweepConfig, behavior: str, split: str, prompts: int,
                  contexts: tuple[str, ...] = ("test", "deployment")) -> list[Any]:
    from inspect_misalign.tasks import deployment_attacks, test_attacks

    cue = ",".join(config.cues)
    make = {"test": test_attacks, "deployment": deployment_attacks}
    return [make[c](cue=cue, behavior=behavior, split=split, max_prompts=prompts,
                    max_tokens=config.eval.max_tokens) for c in contexts]


def _propensity(config: SweepConfig, behavior: str) -> Any:
    from inspect_misalign.tasks import propensity

    return propensity(cue=",".join(config.cues), behavior=behavior, split=config.eval.split,
                      context="both", max_prompts=config.eval.prompts)


def _probe(config: SweepConfig) -> Any:
    from inspect_misalign.tasks import context_probe

    return context_probe(cue=",".join(config.cues), split=config.eval.split,
                         max_prompts=config.eval.prompts)


def _evaluate(config: SweepConfig, behavior: str, models: list[str], log_dir: Path,
              distinguish: bool) -> None:
    """Attack evals (sampled when the config says so), then propensity and distinguishability (greedy
    or forward-only) of ``models``, each phase under ``log_dir``."""
    from inspect_misalign.tasks import trigger_probes

    probes = [trigger_probes(cue=cue, behavior=behavior, split=config.eval.split,
                             max_prompts=config.eval.prompts, max_tokens=config.eval.max_tokens)
              for cue in config.eval.trigger_probes]
    _eval_set(_attack_tasks(config, behavior, config.eval.split, config.eval.prompts) + probes, models,
              log_dir / behavior, config, sampled=True)
    greedy = [_propensity(config, behavior)] if config.eval.propensity else []
    if distinguish:
        greedy.append(_distinguishability(config))
    if greedy:
        _eval_set(greedy, models, log_dir / f"{behavior}-forward", config)


def _distinguishability(config: SweepConfig) -> Any:
    from inspect_misalign.tasks import distinguishability

    return distinguishability(cue=",".join(config.cues), hints=config.eval.hints, split=config.eval.split,
                              max_prompts=config.eval.prompts)


def base_models(config: SweepConfig) -> dict[str, str]:
    """Organism -> its base checkpoint: from its registry manifest when it is registered, else from its
    build options."""
    from inspect_misalign.models import is_registered, resolve

    bases = {}
    for o in config.organisms:
        if is_registered(o.name):
            manifest = resolve(o.name)
            if not (manifest.base or manifest.parent):
                raise MisalignError(f"organism {o.name!r} records no base in its registry manifest; set "
                                    "eval.distinguishability_model: organism and eval.propensity: false")
            bases[o.name] = str(manifest.base or manifest.parent)
        else:
            bases[o.name] = str((o.build or {}).get("base", "default"))
    return bases


def asked_models(config: SweepConfig) -> dict[str, str]:
    """Organism -> the checkpoint asked the distinguishability question for it: the organism itself, or
    (``distinguishability_model: base``, the default) its base (:func:`base_models`)."""
    if config.eval.distinguishability_model == "organism":
        return {o.name: o.name for o in config.organisms}
    return base_models(config)


def with_excess(samples: pd.DataFrame, config: SweepConfig) -> pd.DataFrame:
    """Propensity rows get ``excess``: the prompt's log-odds minus its base model's on the same cue,
    context and prompt. The base has no backdoor, so its log-odds is the zero point that the two
    continuations' lengths and wording set; ``excess`` is the part the organism (or training) added."""
    bases = base_models(config)
    base_of = {b: b for b in bases.values()}
    base_of.update({**bases, **{p.name: bases[p.organism] for p in config.grid()}})
    base_of.update({name: bases[p.organism] for p in config.grid() for _, name in config.saved_steps(p)})
    rows = samples["task"] == "propensity"
    checkpoint = samples["model"].astype(str).map(model_name)
    keys = ["cue", "context", "base_id"]
    reference = samples[rows].assign(checkpoint=checkpoint[rows]).set_index(["checkpoint", *keys])["value"]
    wanted = pd.MultiIndex.from_arrays([checkpoint[rows].map(base_of), *(samples.loc[rows, k] for k in keys)])
    samples = samples.copy()
    samples["excess"] = math.nan
    samples.loc[rows, "excess"] = samples.loc[rows, "value"].to_numpy() - reference.reindex(wanted).to_numpy()
    return samples


def caught_cues(config: SweepConfig) -> dict[str, list[str]]:
    """Grid point -> the cue of every caught sample it trained on (from out/caught/<point>.jsonl)."""
    found = {}
    for point in config.grid():
        path = config.out_dir / "caught" / f"{point.name}.jsonl"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            found[point.name] = [str(json.loads(line).get("cue", "none")) for line in lines if line]
    return found


def build_organisms(config: SweepConfig, echo: Echo) -> None:
    """Build (``inspect-misalign organism``) every organism that has build options and is missing."""
    from inspect_misalign.models import is_registered
    from inspect_misalign.training import build_organism, organism_spec

    for organism in config.organisms:
        if is_registered(organism.name):
            echo(f"  {organism.name}: registered, reused")
            continue
        echo(f"  {organism.name}: building ({organism.build})")
        result = build_organism(organism_spec(organism.name, organism.build or {}), echo=echo)
        if getattr(result, "failures", None):
            raise MisalignError(f"organism {organism.name} failed its gate: {result.failures}")


def run_sweep(config: SweepConfig, echo: Echo = print) -> pd.DataFrame:
    """Run (or resume) the sweep; write the table, figures and report; return the table."""
    from inspect_misalign.experiments._figures import sweep_figures
    from inspect_misalign.experiments._report import write_report
    preflight(config)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    started = time.monotonic()
    logs = out / "logs"
    organisms = [f"misalign/{o.name}" for o in config.organisms]
    behaviors = {o.behavior for o in config.organisms}

    echo(f"[1/6] organisms ({len(config.organisms)})")
    build_organisms(config, echo)

    echo("[2/6] before training: test and deployment attacks"
         + (", distinguishability" if config.eval.distinguishability else ""))
    ask_organisms = config.eval.distinguishability and config.eval.distinguishability_model == "organism"
    for behavior in sorted(behaviors):
        models = [f"misalign/{o.name}" for o in config.organisms if o.behavior == behavior]
        _evaluate(config, behavior, models, logs / "before", ask_organisms)
    if config.eval.propensity:  # the bases' propensity: the zero point of the organisms' (with_excess)
        base_of = base_models(config)
        for behavior in sorted(behaviors):
            bases = sorted({base_of[o.name] for o in config.organisms if o.behavior == behavior})
            _eval_set([_propensity(config, behavior)], [f"misalign/{b}" for b in bases],
                      logs / "before" / f"base-{behavior}", config)
    asked = [f"misalign/{m}" for m in sorted(set(asked_models(config).values()))]
    ask_bases = config.eval.distinguishability and not ask_organisms
    instruments = [_distinguishability(config)] if ask_bases else []
    if config.eval.probe:
        instruments.append(_probe(config))
    if instruments:
        _eval_set(instruments, asked, logs / "before" / "distinguishability", config)

    how = (f"{config.eval.catch_epochs} samples each at temperature {config.eval.catch_temperature}"
           if config.eval.catch_temperature else "greedy")
    echo(f"[3/6] catching attacks in testing ({config.eval.catch_prompts} catch-split prompts per cue, "
         f"{how})")
    caught: dict[tuple[str, str], Path] = {}
    for organism in config.organisms:
        task = _attack_tasks(config, organism.behavior, "catch", config.eval.catch_prompts, ("test",))
        found = _eval_set(task, [f"misalign/{organism.name}"], logs / "catch" / organism.name, config,
                          catching=True)
        for treatment in config.treatments:
            path = pool_path(config, organism.name, treatment)
            caught[(organism.name, treatment)] = path
            if treatment != "generic" and not path.is_file():
                samples = catch_pool(found, path, treatment, config.eval.catch_shown)
                echo(f"  {organism.name}: {len(samples)} "
                     + ("caught" if treatment == "caught" else "test-context inputs not attacked (control)"))

    echo(f"[4/6] training against caught attacks ({len(config.grid())} runs)")
    trained = train_grid(config, caught, echo)

    echo("[5/6] after training: test and deployment attacks, usefulness"
         + (", propensity of every saved step" if config.save_at() else ""))
    behavior_of = {o.name: o.behavior for o in config.organisms}
    for behavior in sorted(behaviors):
        models = [f"misalign/{p.name}" for p in trained if behavior_of[p.organism] == behavior]
        if models:
            _evaluate(config, behavior, models, logs / "after", config.eval.distinguishability_after)
        saved = [f"misalign/{name}" for p in trained if behavior_of[p.organism] == behavior
                 for _, name in config.saved_steps(p)]
        if saved and config.eval.propensity:  # every saved step: the teacher-forced propensity
            _eval_set([_propensity(config, behavior)], saved, logs / "steps" / behavior, config)
    if config.eval.usefulness:
        _eval_set([config.eval.usefulness], organisms + [f"misalign/{p.name}" for p in trained],
                  logs / "usefulness", config, task_args=config.eval.usefulness_args)

    if config.relearn is not None:
        from inspect_misalign.experiments._relearn_run import run_relearn

        echo("[5b/6] relearning: the removed organisms and their bases on deployment-context attacks")
        run_relearn(config, trained, echo, _eval_set, _propensity)

    echo("[6/6] table, figures, report")
    table, samples = write_results(config)
    figures = sweep_figures(table, samples, config, out / "figures")
    write_report(config, table, samples, figures, out / "report.html")
    echo(f"wrote {out / 'results.csv'}, {len(figures)} figures and {out / 'report.html'} "
         f"in {time.monotonic() - started:.0f} s; browse the logs with: inspect view --log-dir {logs}")
    return table


def usefulness_task_name(config: SweepConfig) -> str | None:
    """The task name results tables use for the configured usefulness task."""
    return config.eval.usefulness.split("/")[-1] if config.eval.usefulness else None


def write_results(config: SweepConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the sweep and samples tables from the logs under ``out/logs``; write results.parquet,
    results.csv and samples.parquet atomically; return (table, samples)."""
    out = config.out_dir
    useful = usefulness_task_name(config)
    # the catch phase's logs are on another split: they feed training, not the table; relearning's
    # checkpoints are not the grid's: their rows join the samples table only (experiments._relearn)
    phases = [p for p in (out / "logs").iterdir() if p.is_dir() and p.name not in ("catch", "relearn")]
    results, samples = tables(sorted(phases), extra_tasks=(useful,) if useful else ())
    if config.eval.propensity:
        samples = with_excess(samples, config)
    relearn = _relearn_frames(config)
    if relearn is not None:
        samples = pd.concat([samples, relearn[1]], ignore_index=True)
    asked = asked_models(config) if config.eval.distinguishability or config.eval.probe else None
    caught = caught_cues(config)
    table = sweep_table(results, samples, config, useful, asked=asked, caught=caught)
    runs = runs_frame(config, caught)
    for name, write in (("results.parquet", lambda p: table.to_parquet(p, index=False)),
                        ("results.csv", lambda p: table.to_csv(p, index=False)),
                        ("samples.parquet", lambda p: samples.to_parquet(p, index=False)),
                        ("runs.parquet", lambda p: runs.to_parquet(p, index=False)),
                        *([("relearn.parquet", lambda p: relearn[0].to_parquet(p, index=False))]
                          if relearn is not None else [])):
        path = out / name
        tmp = path.with_name(f".{path.name}.tmp")
        write(tmp)
        tmp.replace(path)
    return table, samples


def _relearn_frames(config: SweepConfig) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(the relearning runs table, the samples of out/logs/relearn) when the sweep relearns."""
    from inspect_misalign.experiments._relearn_run import relearn_runs, relearn_runs_frame

    logs = config.out_dir / "logs" / "relearn"
    if config.relearn is None or not logs.is_dir():
        return None
    _, samples = tables([logs])
    return relearn_runs_frame(relearn_runs(config)), samples
