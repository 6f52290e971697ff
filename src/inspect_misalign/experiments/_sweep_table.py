"""The sweep's tidy table: results rows plus lineage, caught counts, distinguishability, usefulness and
retained misalignment (:mod:`inspect_misalign.experiments._retained`)."""

from __future__ import annotations

import math

import pandas as pd

from inspect_misalign.experiments._config import SweepConfig
from inspect_misalign.experiments._retained import (
    ATTACKS,
    MEASURES,
    Measure,
    model_name,
    pooled,
    prompt_interval,
    setting_keys,
)
from inspect_misalign.scorers import wilson_interval

LINEAGE = ("stage", "organism", "group", "train_on", "treatment", "caught", "steps", "step", "defense",
           "seed", "distinguishability_model")
COUNTS = ("caught", "steps", "step", "seed", "caught_actual", "caught_total", "n")
RETENTION = ["gap_before", "gap_before_p", "retained_deploy", "retained_deploy_ci95_lower",
             "retained_deploy_ci95_upper", "retained_gap", "retained_gap_ci95_lower",
             "retained_gap_ci95_upper", "retained_reason"]


def lineage_frame(config: SweepConfig, asked: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per checkpoint of the sweep (organisms, the bases asked, trained points and the steps
    they saved) with lineage.

    ``asked`` maps each organism to the checkpoint whose distinguishability stands for it (its base,
    or itself; default itself). ``step`` is where the checkpoint sits on its run: 0 for an organism,
    ``steps`` for a trained point, k for the adapter it saved at step k (stage ``step``).
    """
    asked = asked or {}
    group = {o.name: o.group or o.name for o in config.organisms}
    rows = [{"checkpoint": o.name, "stage": "organism", "organism": o.name, "group": group[o.name],
             "step": 0, "distinguishability_model": asked.get(o.name, o.name)} for o in config.organisms]
    for base in sorted(set(asked.values()) - set(group)):
        rows.append({"checkpoint": base, "stage": "base", "distinguishability_model": base})
    for point in config.grid():
        run = {"organism": point.organism, "group": group[point.organism], "train_on": point.train_on,
               "treatment": point.treatment, "caught": point.caught, "steps": point.steps,
               "defense": point.defense, "seed": point.seed,
               "distinguishability_model": asked.get(point.organism, point.organism)}
        rows.append({"checkpoint": point.name, "stage": "trained", **run, "step": point.steps})
        rows += [{"checkpoint": name, "stage": "step", **run, "step": k}
                 for k, name in config.saved_steps(point)]
    return pd.DataFrame(rows, columns=["checkpoint", *LINEAGE])


RUN_COLUMNS = ["checkpoint", "organism", "group", "treatment", "caught", "caught_actual", "train_on", "steps",
               "defense", "seed", "step"]


def runs_frame(config: SweepConfig, caught: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Where each checkpoint sits on a dose–response curve (the *runs* table of
    :mod:`inspect_misalign.experiments._dose`): every organism at step 0 (no treatment, shared by all its
    runs), every saved step and every trained point at its step, with the run's treatment, caught count
    asked (``caught``, the dose) and trained on (``caught_actual``, from ``caught``: point -> cues)."""
    caught = caught or {}
    frame = lineage_frame(config)
    frame = frame[frame["stage"].isin(["organism", "trained", "step"])].copy()
    point_of = {name: p.name for p in config.grid()
                for name in (p.name, *(n for _, n in config.saved_steps(p)))}
    frame["caught_actual"] = [len(caught[point_of[c]]) if point_of.get(c) in caught else pd.NA
                              for c in frame["checkpoint"]]
    for column in ("caught", "caught_actual", "steps", "seed", "step"):
        frame[column] = pd.array(frame[column], dtype="Int64")
    return frame[RUN_COLUMNS].reset_index(drop=True)


def _usefulness(table: pd.DataFrame, task: str) -> pd.DataFrame:
    rows = []
    for checkpoint, group in table[table["task"] == task].groupby("checkpoint"):
        n = int(group["n"].sum())
        hits = float((group["rate"] * group["n"]).sum())
        low, high = wilson_interval(hits, n)
        rows.append({"checkpoint": checkpoint, "usefulness": hits / n, "usefulness_ci95_lower": low,
                     "usefulness_ci95_upper": high, "usefulness_n": n})
    return pd.DataFrame(rows, columns=["checkpoint", "usefulness", "usefulness_ci95_lower",
                                       "usefulness_ci95_upper", "usefulness_n"])


def _distinguishability(table: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per row: the distinguishability (accuracy with a bootstrap CI over prompts, AUC) on its cue of
    the checkpoint itself when it was asked, else of the model asked for its organism."""
    dist = table[table["task"] == "distinguishability"].set_index(["checkpoint", "cue"])
    cache: dict[tuple[str, str], tuple[float, ...]] = {}
    rows = []
    for row in table.itertuples():
        value: tuple[float, ...] = (math.nan,) * 4
        for who in (row.checkpoint, row.distinguishability_model):
            if (who, row.cue) in dist.index:
                if (who, row.cue) not in cache:
                    model = str(dist.loc[(who, row.cue), "model"])
                    interval = prompt_interval(samples, "distinguishability", [model_name(model)], row.cue)
                    cache[(who, row.cue)] = (*interval, float(dist.loc[(who, row.cue), "auc"]))
                value = cache[(who, row.cue)]
                break
        rows.append(value)
    return pd.DataFrame(rows, index=table.index, columns=[
        "distinguishability_accuracy", "distinguishability_ci95_lower", "distinguishability_ci95_upper",
        "distinguishability_auc"])


PROBE_COLUMNS = ["probe_auc", "probe_auc_ci95_lower", "probe_auc_ci95_upper"]


def _probe(table: pd.DataFrame) -> pd.DataFrame:
    """Per row: the hidden-state probe AUC (headline layer, bootstrap CI) on its cue of the model asked
    for its organism (or of the checkpoint itself when it was probed)."""
    probe = table[table["task"] == "context_probe"].drop_duplicates(["checkpoint", "cue"])
    found = probe.set_index(["checkpoint", "cue"])[["rate", "ci95_lower", "ci95_upper"]]
    rows = []
    for row in table.itertuples():
        value = (math.nan,) * 3
        for who in (row.checkpoint, row.distinguishability_model):
            if (who, row.cue) in found.index:
                value = tuple(float(v) for v in found.loc[(who, row.cue)])
                break
        rows.append(value)
    return pd.DataFrame(rows, index=table.index, columns=PROBE_COLUMNS)


def _caught(table: pd.DataFrame, caught: dict[str, list[str]]) -> pd.DataFrame:
    """caught_actual (caught samples of the row's cue the checkpoint trained on) and caught_total."""
    actual, total = [], []
    for row in table.itertuples():
        cues = caught.get(row.checkpoint) if row.stage == "trained" else None
        total.append(len(cues) if cues is not None else pd.NA)
        if cues is not None and row.treatment == "generic":  # instruction data: no cue, every one counts
            actual.append(len(cues))
            continue
        actual.append(sum(c == row.cue for c in cues) if cues is not None and row.cue != "none" else pd.NA)
    return pd.DataFrame({"caught_actual": actual, "caught_total": total}, index=table.index)


def sweep_table(
    results: pd.DataFrame,
    samples: pd.DataFrame,
    config: SweepConfig,
    usefulness_task: str | None,
    asked: dict[str, str] | None = None,
    caught: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Results rows joined with lineage, caught counts, distinguishability, usefulness and retention.

    ``caught`` maps a trained checkpoint to the cues of the caught samples it trained on; retention
    columns (:data:`RETENTION`) fill the deployment rows of trained checkpoints, for each measure of
    :data:`inspect_misalign.experiments._retained.MEASURES` with samples.
    """
    table = results.copy()
    table["checkpoint"] = table["model"].astype(str).map(model_name)
    table = table.merge(lineage_frame(config, asked), on="checkpoint", how="left")
    table["distinguishability_model"] = table["distinguishability_model"].fillna(table["checkpoint"])
    table[["caught_actual", "caught_total"]] = _caught(table, caught or {})
    if usefulness_task:
        table = table.merge(_usefulness(table, usefulness_task), on="checkpoint", how="left")
    table = table.join(_distinguishability(table, samples)).join(_probe(table))
    for column in RETENTION:
        table[column] = "" if column == "retained_reason" else math.nan
    for measure in MEASURES:
        frame = pooled(table, samples, ["checkpoint"], measure)
        if frame.empty:
            continue
        keyed = frame.set_index(["checkpoint", "cue"])[RETENTION]
        rows = (table["task"].isin(measure.tasks) & (table["context"] == "deployment")
                & (table["stage"] == "trained"))
        index = pd.MultiIndex.from_frame(table.loc[rows, ["checkpoint", "cue"]])
        table.loc[rows, RETENTION] = keyed.reindex(index).to_numpy()
    for column in RETENTION[:-1]:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    for column in COUNTS:
        table[column] = pd.array(table[column], dtype="Int64")
    table["retained_reason"] = table["retained_reason"].fillna("").astype(str)
    return table


def pooled_table(
    table: pd.DataFrame, samples: pd.DataFrame, by: list[str], measure: Measure = ATTACKS
) -> pd.DataFrame:
    """:func:`pooled` retention plus, per row, the caught samples of the cue the pooled checkpoints
    actually trained on (``caught_actual_min``/``_max``) and the distinguishability of the models asked
    for the group's organisms on the cue (accuracy with a bootstrap CI over prompts)."""
    frame = pooled(table, samples, by, measure)
    if frame.empty:
        return frame
    keys = [c for c in frame.columns if c in (*setting_keys(table, by), "group")]
    rows = table[table["task"].isin(measure.tasks) & (table["context"] == "deployment")
                 & (table["stage"] == "trained")]
    counts = rows.groupby([*keys, "cue"], dropna=False)["caught_actual"].agg(["min", "max"])
    counts.columns = ["caught_actual_min", "caught_actual_max"]
    frame = frame.merge(counts.reset_index(), on=[*keys, "cue"], how="left")
    organisms = table[table["stage"] == "organism"].drop_duplicates("checkpoint")
    asked = organisms.groupby("group")["distinguishability_model"].agg(lambda s: sorted(set(s)))
    dist = table[table["task"] == "distinguishability"].drop_duplicates("checkpoint")
    model_of = dict(zip(dist["checkpoint"], dist["model"].astype(str).map(model_name), strict=True))
    values = []
    for row in frame.itertuples():
        models = [model_of[m] for m in asked.get(row.group, []) if m in model_of]
        values.append(prompt_interval(samples, "distinguishability", models, row.cue) if models
                      else (math.nan,) * 3)
    frame[["distinguishability_accuracy", "distinguishability_ci95_lower",
           "distinguishability_ci95_upper"]] = pd.DataFrame(values, index=frame.index)
    for column in ("caught_actual_min", "caught_actual_max"):
        frame[column] = pd.array(frame[column], dtype="Int64")
    return frame


__all__ = ["COUNTS", "LINEAGE", "PROBE_COLUMNS", "RETENTION", "RUN_COLUMNS", "lineage_frame", "pooled_table",
           "runs_frame", "sweep_table"]
