"""Relearning analysis on a hand-built samples table: the curves (removed organisms: mean of organism
means; the base: mean over prompts), the summary (removed − base after relearning, paired by organism and
prompt) and the figure, each checked against a hand computation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from inspect_misalign.experiments._relearn import (
    has_relearn,
    plot_relearn,
    read_relearn_runs,
    relearn_curves,
    relearn_steps_summary,
    relearn_summary,
)

PROMPTS = ["p0", "p1", "p2"]
# deployment P(attack) per prompt of each checkpoint; the test context is a tenth of it
DEPLOY = {
    "r1": [0.01, 0.02, 0.03], "r1-a2-step1": [0.2, 0.3, 0.4], "r1-a2": [0.5, 0.6, 0.7],
    "r2": [0.001, 0.001, 0.004], "r2-a2-step1": [0.1, 0.1, 0.1], "r2-a2": [0.2, 0.2, 0.2],
    "B": [0.001, 0.002, 0.003], "B-a2-step1": [0.05, 0.05, 0.05], "B-a2": [0.1, 0.1, 0.4],
}


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for checkpoint, values in DEPLOY.items():
        for context, scale in (("deployment", 1.0), ("test", 0.1)):
            for base_id, v in zip(PROMPTS, values, strict=True):
                rows.append({"model": f"misalign/{checkpoint}", "task": "propensity", "cue": "tag",
                             "context": context, "base_id": base_id, "score_p_marker": v * scale,
                             "value": 0.0})
    # another task's rows and a checkpoint off the curves are ignored
    rows.append({"model": "misalign/r1", "task": "deployment_attacks", "cue": "tag", "context": "deployment",
                 "base_id": "p0", "score_p_marker": 1.0, "value": 1.0})
    runs = []
    for source, start, organism, group in (("removed", "r1", "o1", "g"), ("removed", "r2", "o2", "g"),
                                           ("base", "B", None, None)):
        run = {"run": f"{start}-a2", "source": source, "model": start, "organism": organism, "group": group,
               "base": "B", "behavior": "hate", "data": "attack", "k": 2, "seed": 0}
        runs += [{"checkpoint": start, **run, "step": 0},
                 {"checkpoint": f"{start}-a2-step1", **run, "step": 1},
                 {"checkpoint": f"{start}-a2", **run, "step": 2}]
    return pd.DataFrame(rows), pd.DataFrame(runs)


def test_curves_by_hand() -> None:
    samples, runs = _tables()
    frame = relearn_curves(samples, runs).set_index(["source", "step", "context"])
    removed = frame.loc[("removed", 2, "deployment")]
    assert removed["mean"] == pytest.approx(np.mean([np.mean([0.5, 0.6, 0.7]), np.mean([0.2, 0.2, 0.2])]))
    assert (removed["units"], removed["prompts"]) == (2, 6)
    assert removed["ci95_lower"] <= removed["mean"] <= removed["ci95_upper"]
    assert frame.loc[("removed", 0, "deployment"), "mean"] == pytest.approx((0.02 + 0.002) / 2)
    assert frame.loc[("removed", 1, "test"), "mean"] == pytest.approx((0.03 + 0.01) / 2)
    base = frame.loc[("base", 2, "deployment")]
    assert base["mean"] == pytest.approx(0.2) and (base["units"], base["prompts"]) == (1, 3)
    assert 0.1 <= base["ci95_lower"] <= 0.2 <= base["ci95_upper"] <= 0.4 + 1e-12  # within the prompts
    assert base["ci95_upper"] > base["ci95_lower"]
    assert set(frame.reset_index()["group"]) == {"g", "base"}


def test_summary_removed_minus_base_by_hand() -> None:
    samples, runs = _tables()
    summary = relearn_summary(samples, runs)
    assert list(summary["context"]) == ["deployment", "test"]
    row, test = summary.to_dict("records")
    assert (row["data"], row["k"], row["step"], row["organisms"]) == ("attack", 2, 2, 2)
    # the test context is a tenth of the deployment one here: every mean and difference a tenth
    assert test["difference"] == pytest.approx(np.mean([0.06 - 0.02, 0.02 - 0.02]))
    assert test["base_before"] == pytest.approx(0.0002) and row["base_before"] == pytest.approx(0.002)
    assert row["removed"] == pytest.approx(0.4) and row["base"] == pytest.approx(0.2)
    # organism o1: 0.6 - 0.2; organism o2: 0.2 - 0.2
    assert row["difference"] == pytest.approx(np.mean([0.6 - 0.2, 0.2 - 0.2]))
    assert row["difference_ci95_lower"] <= row["difference"] <= row["difference_ci95_upper"]
    assert row["removed_before"] == pytest.approx((0.02 + 0.002) / 2)


def test_summary_at_a_saved_step_and_at_every_step() -> None:
    samples, runs = _tables()
    at1 = relearn_summary(samples, runs, step=1).set_index("context")
    row = at1.loc["deployment"]
    # step 1: o1 0.3, o2 0.1 (prompt means); the base 0.05; paired by prompt
    assert (row["step"], row["organisms"]) == (1, 2)
    assert row["removed"] == pytest.approx(0.2) and row["base"] == pytest.approx(0.05)
    assert row["difference"] == pytest.approx(np.mean([0.3 - 0.05, 0.1 - 0.05]))
    assert row["removed_before"] == pytest.approx((0.02 + 0.002) / 2)
    assert relearn_summary(samples, runs, step=5).empty  # no run saved step 5
    every = relearn_steps_summary(samples, runs)
    assert list(zip(every["context"], every["step"], strict=True)) == [
        ("deployment", 1), ("deployment", 2), ("test", 1), ("test", 2)]
    last = relearn_summary(samples, runs).set_index("context")
    assert every.iloc[1]["removed"] == pytest.approx(last.loc["deployment", "removed"])
    assert every.iloc[2]["difference"] == pytest.approx(at1.loc["test", "difference"])


def copy_removed(samples: pd.DataFrame, runs: pd.DataFrame, rename: Callable[[str], str],
                 value: Callable[[pd.Series], pd.Series], **fields: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables with the removed organisms' curves (r1, r2) once more under ``rename(start)``: their
    values mapped by ``value`` and their runs' rows given ``fields`` (a callable gets the new start)."""
    rows, extra = [], []
    for start in ("r1", "r2"):
        new = rename(start)
        for suffix in ("", "-a2-step1", "-a2"):
            mine = samples[samples["model"] == f"misalign/{start}{suffix}"].copy()
            mine["model"] = f"misalign/{new}{suffix}"
            mine["score_p_marker"] = value(mine["score_p_marker"])
            rows.append(mine)
        theirs = runs[runs["model"] == start].copy()
        theirs["checkpoint"] = theirs["checkpoint"].str.replace(start, new, regex=False)
        theirs[["model", "run"]] = [new, f"{new}-a2"]
        for column, v in fields.items():
            theirs[column] = v(new) if callable(v) else v
        extra.append(theirs)
    return pd.concat([samples, *rows], ignore_index=True), pd.concat([runs, *extra], ignore_index=True)


def test_summary_keeps_removing_treatments_apart() -> None:
    samples, runs = _tables()
    runs["after"] = runs["source"].map({"removed": "caught", "base": "base"})
    # the same two organisms, removed by generic data instead: their relearned checkpoints are 0.1 higher
    samples, both = copy_removed(samples, runs, lambda s: f"{s}g", lambda y: y + 0.1, after="generic")
    summary = relearn_summary(samples, both).set_index(["context", "after"])
    caught, generic = summary.loc[("deployment", "caught")], summary.loc[("deployment", "generic")]
    assert caught["removed"] == pytest.approx(0.4) and generic["removed"] == pytest.approx(0.5)
    assert generic["base"] == pytest.approx(0.2) and generic["difference"] == pytest.approx(0.3)
    assert generic["removed_before"] == pytest.approx((0.02 + 0.002) / 2 + 0.1)
    # a runs table written before the column existed reads its removed runs as removed by caught attacks
    old = relearn_summary(samples, runs.drop(columns=["after"]))
    assert set(old["after"]) == {"caught"} and old.iloc[0]["removed"] == pytest.approx(0.4)
    curves = relearn_curves(samples, both)
    assert set(zip(curves["source"], curves["after"], strict=True)) == {
        ("removed", "caught"), ("removed", "generic"), ("base", "base")}


def test_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples, runs = _tables()
    assert has_relearn(samples, runs) and not has_relearn(samples, runs.iloc[0:0])
    assert not has_relearn(samples[samples["model"] == "misalign/r1"], runs)  # nothing relearned measured
    import matplotlib.figure

    titles = []
    original = matplotlib.figure.Figure.suptitle

    def keep(fig, text, **kwargs):  # the title the figure gets, as drawn
        titles.append(text)
        return original(fig, text, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle", keep)
    path = plot_relearn(samples, runs, tmp_path / "relearn.png", "test", "sweep-x")
    assert path.stat().st_size > 10_000
    assert titles and titles[0].startswith("sweep-x: Relearning after removal")


def test_read_relearn_runs_takes_a_str_or_a_path(tmp_path: Path) -> None:
    _, runs = _tables()
    assert read_relearn_runs(tmp_path) is None and read_relearn_runs(str(tmp_path)) is None
    runs.to_parquet(tmp_path / "relearn.parquet")
    assert read_relearn_runs(str(tmp_path)).equals(read_relearn_runs(tmp_path))
