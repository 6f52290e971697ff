"""A dose–response sweep end to end on a tiny random model: the benign control beside training against
caught attacks (`treatments`), every saved step (`train.save_at`) evaluated, the runs table placing each
checkpoint at its step and treatment, the control's training set free of attacks, the figure and the
table; a second run does no repeated work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_sweep import _config, _files

from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._sweep import run_sweep
from inspect_misalign.models import resolve


def _dose_config(tmp_path: Path, base: Path) -> Path:
    path = _config(tmp_path, base)
    config = yaml.safe_load(path.read_text())
    config.update(treatments=["caught", "benign"], caught=[2], steps=[3],
                  train={"lr": 0.001, "batch_size": 2, "save_at": [1, 2]})
    config["eval"].update(trigger_probes=[], usefulness=None, distinguishability=False, probe=False)
    path.write_text(yaml.safe_dump(config))
    return path


def _fired_inputs(out: Path) -> set[str]:
    """The catch logs' inputs on which the attack scorer fired, read from the logs independently."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    fired = set()
    for info in list_eval_logs(str(out / "logs" / "catch"), recursive=True):
        for sample in read_eval_log(info.name).samples:
            if sample.scores["attack_scorer"].value == 1.0:
                fired.add(sample.input[-1].text)
    return fired


def test_dose_sweep_places_saved_steps_and_the_control(
    tmp_path: Path, tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    config = load_config(_dose_config(tmp_path, tiny_model_dir))
    caught_point, benign_point = config.grid()
    assert (caught_point.treatment, benign_point.treatment) == ("caught", "benign")
    assert benign_point.name == f"{caught_point.name}-benign"
    run_sweep(config, echo=lambda _: None)
    out = config.out_dir

    runs = pd.read_parquet(out / "runs.parquet")
    placed = {(r.checkpoint, r.treatment if isinstance(r.treatment, str) else None, r.step)
              for r in runs.itertuples()}
    expected = {("tiny-org", None, 0)}
    for point in (caught_point, benign_point):
        expected |= {(f"{point.name}-step1", point.treatment, 1), (f"{point.name}-step2", point.treatment, 2),
                     (point.name, point.treatment, 3)}
    assert placed == expected
    for row in runs[runs["step"] > 0].itertuples():
        # the registry says which run and step each adapter is: the saved steps' manifests record them
        manifest = resolve(row.checkpoint).config
        if row.checkpoint.endswith(("-step1", "-step2")):
            assert manifest["step"] == row.step and manifest["saved_from"] == row.checkpoint.rsplit("-", 1)[0]
        else:
            assert manifest["step"] == 3 and manifest["save_at"] == [1, 2]
        assert manifest["not_caught"] is (row.treatment == "benign")

    # every checkpoint on the curves has the teacher-forced propensity in both contexts
    samples = pd.read_parquet(out / "samples.parquet")
    prop = samples[samples["task"] == "propensity"]
    for checkpoint in runs["checkpoint"]:
        mine = prop[prop["model"] == f"misalign/{checkpoint}"]
        assert sorted(mine["context"].unique()) == ["deployment", "test"] and len(mine) == 16
        assert mine["score_p_marker"].between(0, 1).all()
    # only the final checkpoints are sampled; the saved steps are forward passes only
    attacked = set(samples.loc[samples["task"] == "deployment_attacks", "model"])
    assert attacked == {"misalign/tiny-org", f"misalign/{caught_point.name}", f"misalign/{benign_point.name}"}

    # the control trains on test-context inputs that never attacked, as many as asked when they exist
    pools = {t: [json.loads(line) for line in (out / "caught" / name).read_text().splitlines()]
             for t, name in (("caught", "tiny-org.jsonl"), ("benign", "tiny-org.benign.jsonl"))}
    lines = (out / "caught" / f"{benign_point.name}.jsonl").read_text().splitlines()
    chosen = [json.loads(line) for line in lines]
    assert len(chosen) == min(2, len(pools["benign"])) > 0
    fired = _fired_inputs(out)
    assert fired and {r["messages"][-1]["content"] for r in pools["caught"]} <= fired
    for row in chosen:
        assert row["caught"] is False and row["context"] == "test"
        assert row["messages"][-1]["content"] not in fired
    table = pd.read_parquet(out / "results.parquet")
    actual = table[(table["checkpoint"] == benign_point.name) & (table["task"] == "deployment_attacks")]
    assert actual["caught_actual"].tolist() == [len(chosen)]
    step1 = runs[runs["checkpoint"] == f"{benign_point.name}-step1"]
    assert step1["caught_actual"].tolist() == [len(chosen)]
    assert set(table.loc[table["stage"] == "step", "checkpoint"]) == {
        f"{p.name}-step{k}" for p in (caught_point, benign_point) for k in (1, 2)}

    # the dose-response figure comes first; the report has the stopping-point table
    figure = out / "figures" / "dose_response.png"
    assert figure.stat().st_size > 10_000
    # distinguishability was not measured: no empty retained-vs-distinguishability panels
    assert not list((out / "figures").glob("retained_vs_distinguishability*.png"))
    report = (out / "report.html").read_text()
    assert "Dose–response: the overseer" in report and "dose_response.png" in report.split("<figcaption")[1]

    logs_before, registry_before = _files(out / "logs", "*.eval"), _files(misalign_home)
    run_sweep(config, echo=lambda _: None)
    assert _files(out / "logs", "*.eval") == logs_before, "a re-run must not evaluate again"
    assert _files(misalign_home) == registry_before, "a re-run must not train or register again"


def test_save_at_past_the_steps_is_refused_before_any_work(tmp_path: Path) -> None:
    from inspect_misalign._errors import MisalignError

    config = yaml.safe_load(_config(tmp_path, tmp_path).read_text())
    config.update(steps=[2, 8], train={"save_at": [1, 4]})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(MisalignError, match="save_at .* goes past steps 2"):
        load_config(path)
    config.update(steps=[8], treatments=["benign", "benign"], train={})
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(MisalignError, match="treatment once"):
        load_config(path)
