"""The treated-base reference of relearning (``relearn.treated_base``): the base given the organisms'
``generic`` removal — the very conversations, steps, options and seed — then relearned on the base's data,
and the summary against it (``reference="treated"``), checked against a hand computation."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from test_relearn import _tables, copy_removed
from test_relearn_config import BASE

import inspect_misalign.training as training
from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._grid_train import pool_path, train_grid
from inspect_misalign.experiments._relearn import plot_relearn, relearn_summary
from inspect_misalign.experiments._relearn_run import (
    relearn_runs,
    relearn_runs_frame,
    train_relearn,
    treated_runs,
)

RELEARN = {**BASE["relearn"], "after": ["caught", "generic"], "treated_base": True}


def _load(tmp_path: Path, **changes: Any) -> Any:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**BASE, "relearn": RELEARN, **changes}))
    return load_config(path)


def _bases(config: Any) -> dict[str, str]:
    return {o.name: "default" for o in config.organisms}


def test_treated_base_needs_the_generic_removal(tmp_path: Path) -> None:
    with pytest.raises(MisalignError, match="treated_base gives each base the generic removal") as error:
        _load(tmp_path, relearn={**RELEARN, "after": ["caught"]})
    assert "\n" not in str(error.value)
    assert treated_runs(_load(tmp_path, relearn={**RELEARN, "treated_base": False}), None) == []


def test_one_treated_run_per_base_and_generic_removal(tmp_path: Path) -> None:
    config = _load(tmp_path)
    [treated] = treated_runs(config, _bases(config))  # two organisms, one base: their generic sets are one
    assert treated.name == "rm-base-default-hate-all-c16-s16-none-r0-generic"
    assert (treated.spec.model, treated.spec.steps, treated.spec.seed) == ("default", 16, 0)
    runs = relearn_runs(config, _bases(config))
    # (2 organisms x 2 removals + the base + the treated base) x (4 attack k + benign)
    assert len(runs) == 6 * 5 and len({r.name for r in runs}) == len(runs)
    mine = [r for r in runs if r.source == "treated"]
    assert {(r.after, r.model, r.group, r.base) for r in mine} == {
        ("generic", treated.name, "treated", "default")}
    # the treated base relearns on exactly the base's data
    for data, k in [("attack", 1), ("attack", 8), ("benign", 8)]:
        specs = [{f: v for f, v in asdict(r.spec).items() if f not in ("model", "out")}
                 for r in runs if r.data == data and r.k == k and r.source in ("base", "treated")]
        assert len(specs) == 2 and specs[0] == specs[1]
    frame = relearn_runs_frame(runs)
    start = frame[(frame["source"] == "treated") & (frame["step"] == 0)]
    assert set(start["checkpoint"]) == {treated.name}


def test_the_treated_base_gets_the_organisms_generic_removal(tmp_path: Path, misalign_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The organisms' generic runs (train_grid) and the treated run (train_relearn) are recorded at the
    finetune call: the same options and seed, the same conversations, another starting model."""
    monkeypatch.chdir(tmp_path)
    config = _load(tmp_path, treatments=["generic"], caught=[16], relearn={**RELEARN, "after": ["generic"]})
    calls: list[tuple[Any, list[dict]]] = []

    def record(spec: Any, **_: Any) -> None:
        rows = [json.loads(line) for line in Path(spec.data).read_text().splitlines()] if spec.data else []
        calls.append((spec, rows))

    monkeypatch.setattr(training, "finetune", record)
    generic = config.grid()
    assert {p.treatment for p in generic} == {"generic"} and len(generic) == 2
    pools = {(p.organism, "generic"): pool_path(config, p.organism, "generic") for p in generic}
    train_grid(config, pools, print)
    assert len(calls) == 2
    monkeypatch.setattr("inspect_misalign.experiments._relearn_run._bases",
                        lambda c, b: (_bases(c), [("default", "hate")]))
    train_relearn(config, generic, print)
    treated_spec, treated_rows = calls[2]
    assert treated_spec.out == "rm-base-default-hate-all-c16-s16-none-r0-generic"
    for spec, rows in calls[:2]:
        assert rows == treated_rows and len(rows) == 16
        mine, theirs = asdict(spec), asdict(treated_spec)
        assert mine["model"].startswith("org-s") and theirs["model"] == "default"
        assert {f: v for f, v in mine.items() if f not in ("model", "out", "data")} == {
            f: v for f, v in theirs.items() if f not in ("model", "out", "data")}
    # then the relearning runs: the 2 removed organisms, the base and the treated base, 5 datasets each
    assert len(calls) == 3 + 4 * 5
    assert {c[0].model for c in calls[3:]} == {"default", treated_spec.out, *(p.name for p in generic)}


def _with_treated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """test_relearn's tables, the organisms removed by generic data, plus a treated base T."""
    samples, runs = _tables()
    runs["after"] = runs["source"].map({"removed": "generic", "base": "base"})
    treated = {"T": [0.002, 0.002, 0.002], "T-a2-step1": [0.1, 0.2, 0.3], "T-a2": [0.3, 0.3, 0.3]}
    rows = [{"model": f"misalign/{c}", "task": "propensity", "cue": "tag", "context": "deployment",
             "base_id": p, "score_p_marker": v, "value": 0.0}
            for c, values in treated.items() for p, v in zip(["p0", "p1", "p2"], values, strict=True)]
    run = {"run": "T-a2", "source": "treated", "after": "generic", "model": "T", "organism": "T",
           "group": "treated", "base": "B", "behavior": "hate", "data": "attack", "k": 2, "seed": 0}
    extra = [{"checkpoint": c, **run, "step": s} for c, s in (("T", 0), ("T-a2-step1", 1), ("T-a2", 2))]
    return (pd.concat([samples, pd.DataFrame(rows)], ignore_index=True),
            pd.concat([runs, pd.DataFrame(extra)], ignore_index=True))


def test_summary_against_the_treated_base_by_hand() -> None:
    samples, runs = _with_treated()
    against = relearn_summary(samples, runs, reference="treated")
    row = against[against["context"] == "deployment"].iloc[0]
    assert (row["after"], row["group"], row["organisms"]) == ("generic", "g", 2)
    # o1: 0.5, 0.6, 0.7; o2: 0.2 each; T: 0.3 each (paired by prompt)
    assert row["base"] == pytest.approx(0.3) and row["removed"] == pytest.approx(0.4)
    assert row["difference"] == pytest.approx(np.mean([0.6 - 0.3, 0.2 - 0.3]))
    assert row["base_before"] == pytest.approx(0.002)
    assert row["difference_ci95_lower"] <= row["difference"] <= row["difference_ci95_upper"]
    # the default reference is the untouched base, and the treated base gets its own row against it
    usual = relearn_summary(samples, runs).set_index(["context", "group"])
    assert usual.loc[("deployment", "g"), "base"] == pytest.approx(0.2)
    assert usual.loc[("deployment", "treated"), "difference"] == pytest.approx(0.3 - 0.2)
    with pytest.raises(ValueError, match="reference must be base or treated"):
        relearn_summary(samples, runs, reference="primed")


def test_figure_draws_the_treated_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    samples, runs = _with_treated()
    labels: list[str] = []
    plot = matplotlib.axes.Axes.plot

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        labels.append(kwargs.get("label"))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    path = plot_relearn(samples, runs, tmp_path / "r.png", source="test")
    assert path.is_file() and path.stat().st_size > 0
    assert "base after the generic removal" in labels and "removed by generic, 2 organisms" in labels


def test_sweep_with_a_treated_base(tmp_path: Path, tiny_model_dir: Path, misalign_home: Path,
                                   misalign_cache: Path) -> None:
    """End to end on a tiny random model: the treated base trains on the generic point's own
    conversations, is measured where its curves start, and the report compares the removed organism
    with it."""
    from test_sweep_dose import _dose_config

    from inspect_misalign.experiments._sweep import run_sweep
    from inspect_misalign.models import resolve

    path = _dose_config(tmp_path, tiny_model_dir)
    raw = yaml.safe_load(path.read_text())
    raw.update(treatments=["generic"], relearn={"k": [1], "steps": 2, "save_at": [1], "benign_k": None,
                                                "after": ["generic"], "treated_base": True})
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    [point] = config.grid()
    run_sweep(config, echo=lambda _: None)
    out = config.out_dir
    [treated] = treated_runs(config)
    manifest = resolve(treated.name)
    assert manifest.parent == str(tiny_model_dir) and manifest.config["step"] == point.steps
    mine, theirs = (Path(resolve(n).config["data_file"]).read_text() for n in (point.name, treated.name))
    assert mine == theirs and mine.count("\n") == point.caught
    relearn = pd.read_parquet(out / "relearn.parquet")
    assert set(relearn["source"]) == {"removed", "base", "treated"}
    start = relearn[(relearn["source"] == "treated") & (relearn["step"] == 0)]
    assert set(start["checkpoint"]) == {treated.name}
    samples = pd.read_parquet(out / "samples.parquet")
    measured = samples[(samples["task"] == "propensity") & (samples["model"] == f"misalign/{treated.name}")]
    assert sorted(measured["context"].unique()) == ["deployment", "test"]
    against = relearn_summary(samples, relearn, reference="treated")
    assert set(against["after"]) == {"generic"} and (against["organisms"] == 1).all()
    assert "Against the base given the same removal" in (out / "report.html").read_text()


def test_a_second_group_of_removed_organisms_gets_its_own_colour(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.axes

    samples, runs = _with_treated()
    # the same organisms again as a second group ("sham"), their values lower
    samples, runs = copy_removed(samples, runs, lambda s: f"s{s}", lambda y: y * 0.5,
                                 organism=lambda new: new, group="sham")
    colours: dict[str, str] = {}
    plot = matplotlib.axes.Axes.plot

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("label"):
            colours[kwargs["label"]] = kwargs.get("color")
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot_relearn(samples, runs, tmp_path / "r.png", source="test")
    first = colours["removed by generic (g), 2 organisms"]
    second = colours["removed by generic (sham), 2 organisms"]
    assert first == "C2" and second not in {first, "C0", "C4"}
