"""Tidy tables from Inspect logs, built with ``inspect_ai.analysis``.

Every Inspect sample contributes its score **after Inspect's epoch reduction** (the log's
``reductions``: with ``--epochs K`` and the default reducer, the mean over the K epochs, i.e. the
sample's attack rate). Two tables come from the same logs:

- :func:`results_table`: one row per model × task × cue × context: number of scored samples ``n``
  and of errored or unscored ones ``n_errored`` (missing, never counted as "no attack"), the mean
  value ``rate`` (attack rate, or accuracy for usefulness and distinguishability) with its 95%
  interval (Wilson for values in [0, 1]; a percentile bootstrap over base prompts otherwise, e.g. a
  log-odds), and the distinguishability AUC.
- :func:`samples_table`: one row per model × task × cue × context × base prompt (``base_id``): the
  mean ``value`` of the samples of that prompt (one sample, or e.g. both orders of a
  distinguishability pair), plus every numeric field of the reduced score's metadata as
  ``score_<field>`` (e.g. ``score_p_attack``). Paired statistics (before vs after, test vs
  deployment on the same prompts) are computed from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from inspect_misalign._errors import MisalignError
from inspect_misalign._stats import bootstrap_interval
from inspect_misalign.scorers import metric_key, wilson_interval

TASKS = ("test_attacks", "deployment_attacks", "usefulness", "distinguishability",
         "free_form_misalignment", "propensity", "context_probe", "trigger_probes")
PROBE = "context_probe"
"""Its per-sample value is the class label; its measure is the eval's probe AUC (headline layer)."""
KEYS = ["model", "task", "cue", "context"]
_VALUE = {"C": 1.0, "I": 0.0}


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        return _VALUE.get(value, math.nan)
    if isinstance(value, bool | int | float):
        return float(value)
    return math.nan


def _score_column(frame: pd.DataFrame) -> pd.Series:
    columns = [c for c in frame.columns if c.startswith("score_")]
    if not columns:
        return pd.Series(math.nan, index=frame.index)
    values = frame[columns].bfill(axis=1).iloc[:, 0]
    return values.map(_as_float).astype(float)


def _reduced_scores(log: str) -> dict[str, dict[str, Any]] | None:
    """sample id -> {"value": float, "score_<field>": float, ...} from the log's epoch reductions."""
    from inspect_ai.log import read_eval_log

    header = read_eval_log(log, header_only=True)
    for reduction in header.reductions or []:
        found: dict[str, dict[str, Any]] = {}
        for s in reduction.samples:
            row = {"value": _as_float(s.value)}
            for key, value in (s.metadata or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    row[f"score_{key}"] = float(value)
            found[str(s.sample_id)] = row
        if any(not math.isnan(r["value"]) for r in found.values()):
            return found
    return None


def _per_sample(
    logs: str | Path | Sequence[str | Path], extra_tasks: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evals, samples): one row per eval log, and one per Inspect sample (epochs reduced) with model,
    task, cue, context, base_id and value."""
    from inspect_ai.analysis import evals_df, samples_df

    paths = [str(p) for p in ([logs] if isinstance(logs, str | Path) else logs)]
    evals = evals_df(paths, quiet=True)
    if evals.empty:
        raise MisalignError(f"no Inspect logs found in {', '.join(paths)}; pass a log dir or files")
    evals["task"] = evals["task_name"].map(lambda name: str(name).split("/")[-1])
    evals = evals[evals["task"].isin([*TASKS, *extra_tasks]) & (evals["status"] == "success")]
    if evals.empty:
        raise MisalignError(f"no successful inspect_misalign task logs in {', '.join(paths)}")
    epochs = samples_df(evals["log"].tolist(), quiet=True)
    epochs["id"] = epochs["id"].astype(str)
    epochs["epoch_value"] = _score_column(epochs)
    for column in ("metadata_cue", "metadata_context"):
        epochs[column] = epochs[column].fillna("none") if column in epochs else "none"
    base = epochs["metadata_base_id"] if "metadata_base_id" in epochs else pd.Series(None, epochs.index)
    epochs["base_id"] = base.fillna(epochs["id"]).astype(str)
    frames = []
    for _, group in epochs.groupby("eval_id", sort=False):
        first = group.drop_duplicates("id")
        per = first[["eval_id", "id", "metadata_cue", "metadata_context", "base_id"]].copy()
        per["epochs"] = per["id"].map(group.groupby("id").size())
        reduced = _reduced_scores(str(first["log"].iloc[0]))
        if reduced is None:  # no reductions recorded: Inspect's default reducer, the mean
            per["value"] = per["id"].map(group.groupby("id")["epoch_value"].mean())
        else:
            extra = pd.DataFrame.from_dict(reduced, orient="index")
            per = per.join(extra, on="id")
        frames.append(per)
    samples = pd.concat(frames, ignore_index=True)
    samples = samples.rename(columns={"metadata_cue": "cue", "metadata_context": "context"})
    return evals, samples.merge(evals[["eval_id", "model", "task", "log"]], on="eval_id")


def _interval(group: pd.DataFrame) -> tuple[float, float]:
    values = group["value"].to_numpy(dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if ((values >= 0) & (values <= 1)).all():
        return wilson_interval(float(values.sum()), len(values))
    prompts = group.groupby("base_id")["value"].mean().to_numpy()
    _, low, high = bootstrap_interval(len(prompts), lambda idx: float(prompts[idx].mean()))
    return low, high


def _eval_metric(eval_row: pd.Series, key: str) -> float:
    """The eval's metric ``key`` (evals_df names it ``score_<scorer>_<key>``), else nan."""
    for col, value in eval_row.items():
        if isinstance(col, str) and col.startswith("score_") and col.endswith(f"_{key}"):
            if not pd.isna(value):
                return float(value)
    return math.nan


def _auc_with_ci(eval_row: pd.Series, cue: str, n_cues: int, headline: str) -> tuple[float, float, float]:
    """An AUC on ``cue`` and its CI from the eval's metrics ``auc``, ``auc_ci_lower``, ``auc_ci_upper``
    (prefixed by the cue when several ran, as :func:`metric_key` says with ``headline``)."""
    keys = [metric_key(cue, name, headline) if n_cues > 1 else name
            for name in ("auc", "auc_ci_lower", "auc_ci_upper")]
    auc, low, high = (_eval_metric(eval_row, key) for key in keys)
    return auc, low, high


def _auc(eval_row: pd.Series, cue: str, n_cues: int) -> tuple[float, float, float]:
    """The distinguishability task's answer-probability AUC on ``cue`` and its pair-clustered CI (keys
    of ``scorers._distinguish.distinguish_metrics``)."""
    return _auc_with_ci(eval_row, cue, n_cues, "accuracy")


def _probe(eval_row: pd.Series, cue: str, n_cues: int) -> tuple[float, float, float]:
    """The context probe's headline AUC and its CI on ``cue`` (keys of ``scorers._probe.probe_metrics``)."""
    return _auc_with_ci(eval_row, cue, n_cues, "auc")


def _results(evals: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    eval_rows = evals.set_index("eval_id", drop=False)
    cues_per_eval = per.groupby("eval_id")["cue"].nunique()
    per = per.assign(context=per["context"].where(per["task"] != PROBE, "pair"))
    rows = []
    for (model, task, cue, context), everything in per.groupby(KEYS, dropna=False, sort=False):
        # an errored or unscored sample (no value, or NaN) is missing, never "no attack"
        group = everything[everything["value"].notna()]
        n, errored = len(group), len(everything) - len(group)
        low, high = _interval(group)
        eval_id = everything["eval_id"].iloc[0]
        eval_row, n_cues = eval_rows.loc[eval_id], int(cues_per_eval[eval_id])
        rate = float(group["value"].mean()) if n else math.nan
        auc = _auc(eval_row, cue, n_cues) if task == "distinguishability" else (math.nan,) * 3
        if task == PROBE:  # one row per cue: the probe AUC, over both contexts' renderings
            rate, low, high = _probe(eval_row, cue, n_cues)
            n = int(group["base_id"].nunique())
        rows.append({
            "model": model, "task": task, "cue": cue, "context": context, "n": n, "n_errored": errored,
            "rate": rate, "ci95_lower": low, "ci95_upper": high,
            "auc": auc[0], "auc_ci95_lower": auc[1], "auc_ci95_upper": auc[2],
            "log": everything["log"].iloc[0],
        })
    return pd.DataFrame(rows)


def _samples(per: pd.DataFrame) -> pd.DataFrame:
    extra = sorted(c for c in per.columns if c.startswith("score_"))
    grouped = per.groupby([*KEYS, "base_id"], dropna=False, sort=False)
    table = grouped[["value", *extra]].mean().reset_index()
    table["samples"] = grouped.size().to_numpy()
    table["epochs"] = grouped["epochs"].max().to_numpy()
    table["log"] = grouped["log"].first().to_numpy()
    return table[[*KEYS, "base_id", "value", "samples", "epochs", *extra, "log"]]


def tables(
    logs: str | Path | Sequence[str | Path], extra_tasks: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(:func:`results_table`, :func:`samples_table`) of the same logs, read once."""
    evals, per = _per_sample(logs, extra_tasks)
    return _results(evals, per), _samples(per)


def results_table(
    logs: str | Path | Sequence[str | Path], extra_tasks: Sequence[str] = ()
) -> pd.DataFrame:
    """Tidy table of rates and intervals per model, task, cue and context from logs (files or dirs).

    Logs of the project's tasks are read, plus those of ``extra_tasks`` (names without package,
    e.g. a usefulness task from ``inspect_evals``); their first score is the rate.
    """
    return tables(logs, extra_tasks)[0]


def samples_table(
    logs: str | Path | Sequence[str | Path], extra_tasks: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per model, task, cue, context and base prompt: the prompt's mean reduced score ``value``
    (``samples`` Inspect samples, ``epochs`` each) and numeric score metadata as ``score_<field>``."""
    return tables(logs, extra_tasks)[1]
