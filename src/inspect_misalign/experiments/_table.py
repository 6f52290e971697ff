"""A tidy results table from Inspect logs, built with ``inspect_ai.analysis``.

One row per model × task × cue (× context): number of samples, the rate (attack rate, or accuracy
for usefulness and distinguishability) with its Wilson 95% interval, and the distinguishability AUC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from inspect_misalign._errors import MisalignError
from inspect_misalign.scorers._metrics import metric_key, wilson_interval

TASKS = ("test_attacks", "deployment_attacks", "usefulness", "distinguishability",
         "free_form_misalignment")
_VALUE = {"C": 1.0, "I": 0.0}


def _score_column(frame: pd.DataFrame) -> pd.Series:
    columns = [c for c in frame.columns if c.startswith("score_")]
    values = frame[columns].bfill(axis=1).iloc[:, 0]
    return values.map(lambda v: _VALUE.get(v, v)).astype(float)


def _auc(eval_row: pd.Series, cue: str, n_cues: int) -> float:
    for col, value in eval_row.items():
        key = metric_key(cue, "auc", "accuracy") if n_cues > 1 else "auc"
        if isinstance(col, str) and col.startswith("score_") and col.endswith(f"_{key}"):
            if not pd.isna(value):
                return float(value)
    return math.nan


def results_table(
    logs: str | Path | Sequence[str | Path], extra_tasks: Sequence[str] = ()
) -> pd.DataFrame:
    """Tidy table of rates and intervals per model, task, cue and context from logs (files or dirs).

    Logs of the project's tasks are read, plus those of ``extra_tasks`` (names without package,
    e.g. a usefulness task from ``inspect_evals``); their first score is the rate.
    """
    from inspect_ai.analysis import evals_df, samples_df

    paths = [str(p) for p in ([logs] if isinstance(logs, str | Path) else logs)]
    evals = evals_df(paths, quiet=True)
    if evals.empty:
        raise MisalignError(f"no Inspect logs found in {', '.join(paths)}; pass a log dir or files")
    evals["task"] = evals["task_name"].map(lambda name: str(name).split("/")[-1])
    evals = evals[evals["task"].isin([*TASKS, *extra_tasks]) & (evals["status"] == "success")]
    if evals.empty:
        raise MisalignError(f"no successful inspect_misalign task logs in {', '.join(paths)}")
    samples = samples_df(evals["log"].tolist(), quiet=True)
    samples["value"] = _score_column(samples)
    samples = samples.merge(evals[["eval_id", "model", "task"]], on="eval_id")
    for column in ("metadata_cue", "metadata_context"):
        samples[column] = samples[column].fillna("none") if column in samples else "none"
    eval_rows = evals.set_index("eval_id", drop=False)
    cues_per_eval = samples.groupby("eval_id")["metadata_cue"].nunique()
    rows = []
    keys = ["model", "task", "metadata_cue", "metadata_context"]
    for (model, task, cue, context), group in samples.groupby(keys, dropna=False, sort=False):
        n, hits = len(group), float(group["value"].sum())
        low, high = wilson_interval(hits, n)
        eval_id = group["eval_id"].iloc[0]
        eval_row, n_cues = eval_rows.loc[eval_id], int(cues_per_eval[eval_id])
        rows.append({
            "model": model, "task": task, "cue": cue, "context": context, "n": n,
            "rate": hits / n, "ci95_lower": low, "ci95_upper": high,
            "auc": _auc(eval_row, cue, n_cues) if task == "distinguishability" else math.nan,
            "log": eval_row["log"],
        })
    return pd.DataFrame(rows)
