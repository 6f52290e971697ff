"""The equal-start control of relearning (``relearn.primed``): the priming runs (organism-split prompts,
one run with the smaller levels saved), the primed bases relearned on exactly the base's data, and the
level-matched excess (:mod:`inspect_misalign.experiments._relearn_matched`) checked against a hand
interpolation."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from test_relearn_config import BASE

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._relearn import relearn_summary
from inspect_misalign.experiments._relearn_matched import (
    level_matched,
    level_matched_summary,
    logit,
    plot_level_matched,
)
from inspect_misalign.experiments._relearn_run import priming_runs, relearn_runs, relearn_runs_frame

# test_relearn_config's removal sweep, one caught count and treatment, with priming
CONFIG: dict[str, Any] = {
    **BASE, "treatments": ["caught"], "caught": [4], "train": {"lr": 0.001},
    "relearn": {"k": [1, 8], "steps": 8, "save_at": [2, 4], "benign_k": 8, "primed": [1, 2, 3],
                "primed_k": 8},
}


def _load(tmp_path: Path, **relearn: Any) -> Any:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "relearn": {**CONFIG["relearn"], **relearn}}))
    return load_config(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"primed": [2, 1]}, r"relearn.primed \[2, 1\] is not strictly increasing"),
    ({"primed": [0, 1]}, "relearn.primed must be positive integers"),
    ({"primed_k": 0}, "primed_k"),
])
def test_bad_priming_is_one_line(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(MisalignError, match=message) as error:
        _load(tmp_path, **changes)
    assert "\n" not in str(error.value)


def test_priming_run_and_primed_sources(tmp_path: Path) -> None:
    config = _load(tmp_path)
    bases = {o.name: "default" for o in config.organisms}
    [priming] = priming_runs(config, bases)  # one base, one behaviour: one run
    assert priming.name == "rm-base-default-hate-prime8-s3"
    assert priming.primed() == [(1, f"{priming.name}-step1"), (2, f"{priming.name}-step2"), (3, priming.name)]
    spec = priming.spec
    assert (spec.model, spec.steps, spec.save_at, spec.prompts_n) == ("default", 3, (1, 2), 8)
    assert (spec.prompts_split, spec.prompts_context, spec.targets) == ("organism", "deployment", "attack")
    runs = relearn_runs(config, bases)
    # (2 removed + 1 base + 3 primed) x (2 attack k + benign)
    assert len(runs) == 6 * 3 and len({r.name for r in runs}) == len(runs)
    primed = [r for r in runs if r.source == "primed"]
    assert {(r.after, r.model) for r in primed} == {(f"primed{s}", n) for s, n in priming.primed()}
    assert all(r.organism == r.model and r.base == "default" for r in primed)
    # every starting model of one dataset trains on the same data: the spec differs in model and name only
    for data, k in [("attack", 1), ("attack", 8), ("benign", 8)]:
        specs = [{f: v for f, v in asdict(r.spec).items() if f not in ("model", "out")}
                 for r in runs if r.data == data and r.k == k]
        assert len(specs) == 6 and all(s == specs[0] for s in specs)
    frame = relearn_runs_frame(runs)
    starts = frame[(frame["source"] == "primed") & (frame["step"] == 0)]
    assert set(starts["checkpoint"]) == {n for _, n in priming.primed()}
    assert not priming_runs(_load(tmp_path, primed=[]), bases)


def test_priming_prompts_are_organism_split_and_never_relearning_data(tmp_path: Path) -> None:
    from inspect_misalign.training._finetune import render_prompts

    config = _load(tmp_path)
    bases = {o.name: "default" for o in config.organisms}
    hate = get_behavior("hate")
    [priming] = priming_runs(config, bases)
    primed = {p.prompt.id for p in render_prompts(priming.spec, hate)}
    relearned = {p.prompt.id for r in relearn_runs(config, bases) for p in render_prompts(r.spec, hate)}
    organism = {str(r["id"]) for r in read_jsonl(data_path(hate.prompts_file)) if r["split"] == "organism"}
    assert len(primed) == 8 and primed <= organism and not primed & relearned


# --- the level-matched analysis, on a hand-built table ------------------------------------------------

OFFSETS = [-0.5, 0.0, 0.5]  # per-prompt log-odds around each curve's value: the mean is the value
# (start, after 2 steps) in log-odds; B and P1, P2 never had the backdoor
CURVES = {"B": (-20.0, -6.0), "P1": (-10.0, -2.0), "P2": (-4.0, 2.0),
          "r1": (-7.0, 1.0), "r2": (-15.0, -5.0), "r3": (-2.0, 3.0)}


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, runs = [], []
    for start, (l0, l2) in CURVES.items():
        source = "base" if start == "B" else ("primed" if start.startswith("P") else "removed")
        run = {"run": f"{start}-a1", "source": source, "model": start, "base": "B", "behavior": "hate",
               "data": "attack", "k": 1, "seed": 0,
               "organism": None if source == "base" else start,
               "group": {"base": None, "primed": "primed", "removed": "org"}[source],
               "after": {"base": "base", "primed": f"primed{start[-1]}", "removed": "caught"}[source]}
        mine, samples = curve_rows(start, run, l0, l2)
        runs += mine
        rows += samples
    return pd.DataFrame(rows), pd.DataFrame(runs)


def curve_rows(unit: str, run: dict, start: float, end: float, test_shift: float = 1.0) -> tuple[list, list]:
    """Runs-table rows and propensity samples of one unit's curve: log-odds ``start`` at step 0 and
    ``end`` after 2 steps in deployment (``test_shift`` lower in test), three prompts around each."""
    runs, rows = [], []
    for step, value, checkpoint in ((0, start, unit), (2, end, f"{unit}-a1")):
        runs.append({"checkpoint": checkpoint, **run, "step": step})
        for context in ("deployment", "test"):
            for i, offset in enumerate(OFFSETS):
                rows.append({"model": f"misalign/{checkpoint}", "task": "propensity", "cue": "tag",
                             "context": context, "base_id": f"p{i}",
                             "score_p_marker": _sigmoid(value + offset - test_shift * (context == "test")),
                             "value": 0.0})
    return runs, rows


def test_logit_clips() -> None:
    assert logit(np.array([0.5]))[0] == pytest.approx(0.0)
    assert logit(np.array([0.0]))[0] == pytest.approx(np.log(1e-12 / (1 - 1e-12)))


def test_level_matched_by_hand() -> None:
    samples, runs = _tables()
    frame = level_matched(samples, runs).set_index("organism")
    assert set(frame.index) == {"r1", "r2", "r3"}
    # r1 starts at -7, between P1 (-10 -> -2) and P2 (-4 -> 2): reference -2 + 4 * 3/6 = 0; at 1: excess 1
    assert frame.loc["r1", "start"] == pytest.approx(-7.0, abs=1e-6)
    assert frame.loc["r1", "reference"] == pytest.approx(0.0, abs=1e-6)
    assert frame.loc["r1", "excess"] == pytest.approx(1.0, abs=1e-6)
    # r2 starts at -15, between B (-20 -> -6) and P1: reference -4; at -5: excess -1
    assert frame.loc["r2", "reference"] == pytest.approx(-4.0, abs=1e-6)
    assert frame.loc["r2", "excess"] == pytest.approx(-1.0, abs=1e-6)
    # r3 starts above every reference model: no extrapolation
    assert np.isnan(frame.loc["r3", "reference"]) and np.isnan(frame.loc["r3", "excess"])
    assert frame.loc["r3", "reference_high"] == pytest.approx(-4.0, abs=1e-6)
    # the test context has its own references (all one log-odds lower: the same excesses)
    test = level_matched(samples, runs, context="test").set_index("organism")
    assert test.loc["r1", "excess"] == pytest.approx(1.0, abs=1e-6)


def test_level_matched_summary_counts_and_interval() -> None:
    samples, runs = _tables()
    [row] = level_matched_summary(samples, runs).to_dict("records")
    assert (row["after"], row["k"], row["step"]) == ("caught", 1, 2)
    assert (row["organisms"], row["inside"], row["above"]) == (3, 2, 1)
    assert row["excess"] == pytest.approx(0.0, abs=1e-6)  # (1 + -1) / 2
    assert row["excess_ci95_lower"] <= row["excess"] <= row["excess_ci95_upper"]
    assert row["excess_ci95_lower"] < -0.5 and row["excess_ci95_upper"] > 0.5  # one above, one below
    # without the primed bases only the base is a reference: nothing can be matched
    bare = runs[runs["source"] != "primed"]
    assert level_matched_summary(samples, bare).empty


def test_primed_rows_in_the_summary_and_the_figure(tmp_path: Path) -> None:
    samples, runs = _tables()
    summary = relearn_summary(samples, runs)
    deploy = summary[summary["context"] == "deployment"].set_index("after")
    assert {"caught", "primed1", "primed2"} <= set(deploy.index)
    assert deploy.loc["primed1", "removed"] == pytest.approx(np.mean([_sigmoid(-2 + o) for o in OFFSETS]))
    path = plot_level_matched(samples, runs, tmp_path / "matched.png", "test")
    assert path.stat().st_size > 10_000
