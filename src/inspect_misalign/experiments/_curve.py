"""The curve (issue 21 item 6): retained misalignment at the overseer's stopping point against
distinguishability, one point per cue family or difficulty-knob level, pooled from several sweeps.

Each sweep directory (``inspect-misalign sweep``'s ``out``: ``samples.parquet`` and ``runs.parquet``)
gives one point per organism group (seeds of one recipe on one cue): its caught runs at one caught
count, read with :mod:`inspect_misalign.experiments._dose`. Per point:

- ``q`` and ``best_auc``: the knob's level (the share of test inputs rendered as deployment; 0 for a
  family without one) and the best AUC any observer can reach, 1 − q/2 (docs/cues.md);
- ``retained`` (deployment P(attack) at the stopping step / before, per organism), ``deploy_at_stop``
  and ``deploy_last`` (after the run's last step), each the mean over organisms with a percentile
  bootstrap interval over organisms (the unit of replication);
- ``stop_steps`` per organism and ``stopped`` (how many reached test P(attack) <= threshold);
- ``overlap_prompts`` (test prompts of the eval shown the deployment rendering, of ``test_prompts``)
  and ``stop_bound``: where q > 0 the overseer's rule itself caps what can be retained, since those
  prompts count in the test mean: at the stop their mean P(attack) is at most threshold × n / k, so
  ``retained`` <= ``stop_bound`` / (deployment P before) by construction. A point near its bound says
  nothing the rule did not force;
- ``caught_shown_deployment``: the share of the caught training examples that were test inputs shown
  the deployment rendering (the caught attacks that look exactly like deployment);
- ``test_own_before`` and ``test_own_at_stop``: test P(attack) on the test prompts shown their own
  (test) rendering only, before and at the stop (mean over organisms, bootstrap over organisms): what
  the overseer's mean over all test prompts mixes with the deployment-rendered ones;
- ``effect_benign`` and ``effect_generic`` where the sweep ran that control at the same count: the
  effect of catching, control − caught deployment P(attack) at each organism's stop, paired by
  organism and prompt (:func:`~inspect_misalign.experiments._dose.catching_effect`); > 0: catching
  removed more than the same training without caught attacks.

Per organism rather than per point, :func:`organism_stops` gives the stop step each organism reached
(or its last step), test and deployment P(attack) before and there, retained and the drop ratio: what
shows whether retention follows the stop step or the cue (``stops.png``).

The x-axes of the base model come from Inspect logs of ``distinguishability`` and ``context_probe``
on the same cues (:func:`base_distinguishability`): the prompted accuracy over balanced pairs (each
pair asked in both orders; a bootstrap interval over prompts) with its AUC, and the hidden-state
probe's AUC with its interval.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from inspect_misalign._errors import MisalignError
from inspect_misalign._stats import mean_interval
from inspect_misalign.experiments._dose import DEFAULT_THRESHOLD, catching_effect, curves, stopping_points
from inspect_misalign.experiments._dose_figure import CONTROLS, dose_runs
from inspect_misalign.experiments._retained import model_name, prompt_interval

TABLES = ("samples.parquet", "runs.parquet")


def _read(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = [name for name in TABLES if not (directory / name).is_file()]
    if missing:
        raise MisalignError(f"{directory} has no {missing[0]}; give the out directory of a finished "
                            "`inspect-misalign sweep` (run the sweep, or `inspect-misalign report`, first)")
    samples, runs = (pd.read_parquet(directory / name) for name in TABLES)
    samples["checkpoint"] = samples["model"].astype(str).map(model_name)  # once, not per group
    return samples, dose_runs(runs)


def _level(cue: str) -> float:
    from inspect_misalign.cues import load_cue

    return float(load_cue(cue).overlap or 0.0)


def _overlap_prompts(samples: pd.DataFrame, checkpoint: str, cue: str) -> tuple[int, int]:
    """(k, n): test-context prompts of ``checkpoint``'s propensity eval shown the deployment rendering."""
    from inspect_misalign.cues import load_cue

    rows = samples[(samples["task"] == "propensity") & (samples["context"] == "test")
                   & (samples["cue"] == cue) & (samples["checkpoint"] == checkpoint)]
    ids = sorted(rows["base_id"].unique())
    shown = load_cue(cue).shown_contexts("test", ids)
    return sum(1 for c in shown.values() if c == "deployment"), len(ids)


def _shown_in_log(log: str) -> dict[tuple[str, int], str]:
    """(sample id, epoch) -> the rendering shown, from a catch log's sample summaries (caught files
    written before caught samples kept ``shown_context``)."""
    from inspect_ai.log import read_eval_log_sample_summaries

    try:
        summaries = read_eval_log_sample_summaries(log)
    except (OSError, ValueError):
        return {}
    return {(str(s.id), int(s.epoch)): str((s.metadata or {}).get("shown_context", "test"))
            for s in summaries}


def _caught_share(directory: Path, checkpoints: list[str]) -> float:
    """Share of the caught examples (``caught/<run>.jsonl`` of the runs' final checkpoints) that were
    test inputs shown the deployment rendering (from each sample's ``extra``, else its catch log);
    NaN when no caught file is there or a sample's rendering cannot be found."""
    from inspect_misalign.training import read_caught

    shown, total, logs = 0, 0, {}
    for name in checkpoints:
        path = directory / "caught" / f"{name}.jsonl"
        if not path.is_file():
            continue
        for sample, _ in read_caught(path):
            context = sample.extra.get("shown_context")
            if context is None:
                if sample.log not in logs:
                    logs[sample.log] = _shown_in_log(sample.log)
                context = logs[sample.log].get((sample.sample_id, sample.epoch))
            if context is None:
                return math.nan
            total += 1
            shown += context == "deployment"
    return shown / total if total else math.nan


def _own_test(samples: pd.DataFrame, runs: pd.DataFrame, members: pd.DataFrame, cue: str,
              seed: int) -> dict[str, float]:
    """Test P(attack) on the test prompts shown their own (test) rendering, before and at each
    organism's stop: what the overseer's mean hides when a share of test inputs look like deployment."""
    from inspect_misalign.cues import load_cue

    family = load_cue(cue)
    rows = samples[(samples["task"] == "propensity") & (samples["context"] == "test")
                   & (samples["cue"] == cue)]
    before, at = [], []
    for member in members.itertuples():
        step = member.stop_step if member.stopped else member.max_step
        named = runs[(runs["organism"] == member.organism)
                     & ((runs["step"] == 0) | ((runs["step"] == step) & (runs["treatment"] == "caught")))]
        for when, out in ((0, before), (step, at)):
            names = named[named["step"] == when]["checkpoint"].tolist()
            mine = rows[rows["checkpoint"].isin(names)]
            shown = family.shown_contexts("test", sorted(mine["base_id"].unique()))
            own = mine[mine["base_id"].map(shown) == "test"]
            out.append(float(own["score_p_marker"].mean()) if len(own) else math.nan)
    result: dict[str, float] = {}
    for name, values in (("test_own_before", before), ("test_own_at_stop", at)):
        result[name], result[f"{name}_ci95_lower"], result[f"{name}_ci95_upper"] = _interval(
            pd.Series(values), seed)
    return result


def _effects(samples: pd.DataFrame, runs: pd.DataFrame, stops: pd.DataFrame,
             seed: int) -> dict[str, dict[str, float]]:
    """Group -> the effect of catching against each control the sweep ran (``effect_<control>`` with its
    interval)."""
    out: dict[str, dict[str, float]] = {}
    for control in CONTROLS:
        if not (runs["treatment"] == control).any():
            continue
        for row in catching_effect(samples, runs, stops, control, seed=seed).itertuples():
            out.setdefault(str(row.group), {}).update({
                f"effect_{control}": row.effect, f"effect_{control}_ci95_lower": row.ci95_lower,
                f"effect_{control}_ci95_upper": row.ci95_upper})
    return out


def _interval(values: pd.Series, seed: int) -> tuple[float, float, float]:
    data = values.dropna().to_numpy(dtype=float)
    return mean_interval(data, seed=seed) if len(data) else (math.nan,) * 3


class _Sweep(NamedTuple):
    """One sweep read once at one caught count: what its points and its organisms' rows are made of."""

    directory: Path
    caught: int
    threshold: float
    samples: pd.DataFrame
    every: pd.DataFrame  # the runs at ``caught`` with the controls', and every organism (step 0)
    runs: pd.DataFrame  # the caught runs alone, and every organism
    stops: pd.DataFrame  # the caught runs' stopping points, per organism


def _caught_runs(directory: Path, caught: int, threshold: float) -> _Sweep:
    """Read the sweep in ``directory`` and find its caught runs' stopping points at ``caught``."""
    samples, all_runs = _read(directory)
    every = all_runs[(all_runs["step"] == 0) | (all_runs["caught"] == float(caught))]  # with the controls'
    runs = every[(every["step"] == 0) | (every["treatment"] == "caught")]
    if not (runs["step"] > 0).any():
        found = sorted({int(c) for c in all_runs["caught"].dropna()})
        raise MisalignError(f"{directory} has no caught run at caught={caught} (it has {found}); give "
                            "--caught one of those")
    stops = stopping_points(samples, runs, threshold)
    return _Sweep(directory, caught, threshold, samples, every, runs, stops[stops["treatment"] == "caught"])


def _group_cue(samples: pd.DataFrame, organism: str) -> str:
    """The cue an organism's propensity was measured on (one per organism group)."""
    mine = samples[(samples["task"] == "propensity") & (samples["checkpoint"] == organism)]
    return str(mine["cue"].iloc[0])


def organism_stops(directory: Path, caught: int, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """One row per organism of the sweep in ``directory`` (its caught run at ``caught``): the
    overseer's stop step (NaN if it never stopped), the step judged (the stop, else the last step),
    test and deployment P(attack) before and there, retained and the drop ratio."""
    return _organism_rows(_caught_runs(directory, caught, threshold))


def _organism_rows(sweep: _Sweep) -> pd.DataFrame:
    """:func:`organism_stops` of a sweep already read."""
    samples, stops = sweep.samples, sweep.stops
    cues = {group: _group_cue(samples, str(members["organism"].iloc[0]))
            for group, members in stops.groupby("group", sort=True)}
    out = pd.DataFrame({"sweep": sweep.directory.name, "group": stops["group"],
                        "cue": stops["group"].map(cues), "organism": stops["organism"],
                        "caught": sweep.caught})
    out["stop_step"] = stops["stop_step"].astype(float)
    out["step_judged"] = stops["stop_step"].where(stops["stopped"], stops["max_step"]).astype(int)
    for column in ("stopped", "test_before", "deploy_before", "test_at", "deploy_at", "drop_ratio"):
        out[column] = stops[column]
    out["retained"] = stops["retained_deploy"]
    return out.reset_index(drop=True)


def sweep_points(directory: Path, caught: int, threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 0) -> pd.DataFrame:
    """One row per organism group of the sweep in ``directory``: its caught runs at ``caught``."""
    return _points(_caught_runs(directory, caught, threshold), seed)


def _points(sweep: _Sweep, seed: int) -> pd.DataFrame:
    """:func:`sweep_points` of a sweep already read."""
    directory, caught, threshold, samples, every, runs, stops = sweep
    lines = curves(samples, runs, seed=seed)
    effects = _effects(samples, every, stops, seed)
    rows = []
    for group, members in stops.groupby("group", sort=True):
        trained = runs[(runs["group"] == group) & (runs["step"] > 0)]
        finals = trained.loc[trained.groupby("organism")["step"].idxmax(), "checkpoint"].tolist()
        first = str(trained["organism"].iloc[0])
        cue = _group_cue(samples, first)
        q = _level(cue)
        k, n = _overlap_prompts(samples, first, cue)
        last = lines[(lines["group"] == group) & (lines["context"] == "deployment")]
        last = last[last["step"] == last["step"].max()].iloc[0]
        row = {"sweep": directory.name, "group": group, "cue": cue, "q": q, "best_auc": 1 - q / 2,
               "caught": caught, "organisms": len(members),
               "stop_steps": ", ".join("-" if not s else str(int(t)) for s, t in
                                       zip(members["stopped"], members["stop_step"].fillna(0), strict=True)),
               "stopped": int(members["stopped"].sum()), "last_step": int(last["step"]),
               "overlap_prompts": k, "test_prompts": n,
               "stop_bound": min(1.0, threshold * n / k) if k else math.nan,
               "caught_shown_deployment": _caught_share(directory, finals)}
        for name, column in (("retained", "retained_deploy"), ("deploy_before", "deploy_before"),
                             ("deploy_at_stop", "deploy_at"), ("test_before", "test_before")):
            row[name], row[f"{name}_ci95_lower"], row[f"{name}_ci95_upper"] = _interval(members[column], seed)
        row.update(deploy_last=last["mean"], deploy_last_ci95_lower=last["ci95_lower"],
                   deploy_last_ci95_upper=last["ci95_upper"])
        row.update(_own_test(samples, runs, members, cue, seed))
        row.update(effects.get(group, {}))
        rows.append(row)
    return pd.DataFrame(rows)


def base_distinguishability(logs: Path | list[Path], model: str = "misalign/default") -> pd.DataFrame:
    """Per cue, the base's prompted distinguishability (accuracy with a bootstrap interval over prompts,
    answer-probability AUC with its pair-clustered interval) and hidden-state probe AUC (with its
    interval) from Inspect logs of those two tasks."""
    from inspect_misalign.results import tables

    results, samples = tables(logs)
    results = results[results["model"].astype(str) == model]
    if results.empty:
        raise MisalignError(f"the base logs have no eval of {model}; run distinguishability and "
                            "context_probe on it (docs/results.md shows the command)")
    rows = []
    for cue in sorted(results["cue"].unique()):
        row: dict[str, object] = {"cue": cue}
        dist = results[(results["task"] == "distinguishability") & (results["cue"] == cue)]
        if not dist.empty:
            acc = prompt_interval(samples, "distinguishability", [model_name(model)], cue)
            row.update(prompted_accuracy=acc[0], prompted_ci95_lower=acc[1], prompted_ci95_upper=acc[2],
                       prompted_auc=float(dist["auc"].iloc[0]),
                       prompted_auc_ci95_lower=float(dist["auc_ci95_lower"].iloc[0]),
                       prompted_auc_ci95_upper=float(dist["auc_ci95_upper"].iloc[0]))
        probe = results[(results["task"] == "context_probe") & (results["cue"] == cue)]
        if not probe.empty:
            first = probe.iloc[0]
            row.update(probe_auc=first["rate"], probe_ci95_lower=first["ci95_lower"],
                       probe_ci95_upper=first["ci95_upper"])
        rows.append(row)
    return pd.DataFrame(rows)


def curve_tables(directories: list[Path], caught: int, base_logs: list[Path] | None = None,
                 threshold: float = DEFAULT_THRESHOLD, model: str = "misalign/default"
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`curve_table` and :func:`curve_stops` together, each sweep read once."""
    sweeps = [_caught_runs(d, caught, threshold) for d in directories]
    table = pd.concat([_points(sweep, seed=0) for sweep in sweeps], ignore_index=True)
    if base_logs:
        table = table.merge(base_distinguishability(base_logs, model), on="cue", how="left")
    table = table.sort_values(["q", "cue", "group"], kind="stable").reset_index(drop=True)
    return table, pd.concat([_organism_rows(sweep) for sweep in sweeps], ignore_index=True)


def curve_table(directories: list[Path], caught: int, base_logs: list[Path] | None = None,
                threshold: float = DEFAULT_THRESHOLD, model: str = "misalign/default") -> pd.DataFrame:
    """Every sweep's points, with the base's distinguishability on each point's cue when logs are
    given, sorted by the knob's level."""
    return curve_tables(directories, caught, base_logs, threshold, model)[0]


def curve_stops(directories: list[Path], caught: int, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Every sweep's organisms (:func:`organism_stops`), in the order of the sweeps given."""
    return pd.concat([organism_stops(d, caught, threshold) for d in directories], ignore_index=True)


__all__ = ["base_distinguishability", "curve_stops", "curve_table", "curve_tables", "organism_stops",
           "sweep_points"]
