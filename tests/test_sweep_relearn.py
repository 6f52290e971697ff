"""The removal sweep end to end on a tiny random model: the generic-instruction control beside the caught
and benign runs (`treatments: generic`), and relearning (`relearn:`) of the removed organism, of its base and
of the base primed for 1 and 2 steps on identical deployment-context attack data, every relearning
checkpoint measured; a second run does no repeated work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from test_sweep import _files
from test_sweep_dose import _dose_config

from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._relearn_run import priming_runs
from inspect_misalign.experiments._sweep import run_sweep
from inspect_misalign.models import list_models, resolve

RELEARN = {"k": [1, 2], "steps": 2, "save_at": [1], "benign_k": 2, "seeds": [0], "primed": [1, 2],
           "primed_k": 2}


def _removal_config(tmp_path: Path, base: Path) -> Path:
    path = _dose_config(tmp_path, base)
    config = yaml.safe_load(path.read_text())
    config.update(treatments=["caught", "benign", "generic"], relearn=RELEARN)
    path.write_text(yaml.safe_dump(config))
    return path


def _sft_rows(name: str) -> tuple[str, list[dict]]:
    path = Path(resolve(name).config["data_file"])
    return path.read_text(), [json.loads(line) for line in path.read_text().splitlines()]


def test_removal_sweep_with_the_generic_control_and_relearning(
    tmp_path: Path, tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    config = load_config(_removal_config(tmp_path, tiny_model_dir))
    caught_point, benign_point, generic_point = config.grid()
    assert generic_point.treatment == "generic" and generic_point.name == f"{caught_point.name}-generic"
    run_sweep(config, echo=lambda _: None)
    out = config.out_dir

    # the generic control: as many conversations of the shipped instruction data as asked, as they are
    shipped = {json.dumps(r["messages"]) for r in read_jsonl(data_path("instruct.jsonl"))}
    chosen = [json.loads(line) for line in (out / "caught" / f"{generic_point.name}.jsonl").read_text()
              .splitlines()]
    assert len(chosen) == generic_point.caught == 2
    assert {json.dumps(r["messages"]) for r in chosen} <= shipped
    text, rows = _sft_rows(generic_point.name)  # what it trained on: no attack, no cue
    assert len(rows) == 2 and "HATE" not in text.upper() and "DEPLOYMENT" not in text.upper()
    manifest = resolve(generic_point.name).config
    assert manifest["kind"] == "finetuned" and manifest["parent"] == "tiny-org"
    assert manifest["step"] == caught_point.steps and manifest["save_at"] == [1, 2]
    assert resolve(f"{generic_point.name}-step1").config["step"] == 1
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs.loc[runs["treatment"] == "generic", "checkpoint"]) == {
        generic_point.name, f"{generic_point.name}-step1", f"{generic_point.name}-step2"}

    # the dose table has the effect of catching against each control, the generic one labelled
    from inspect_misalign.experiments._dose_figure import dose_table

    samples = pd.read_parquet(out / "samples.parquet")
    dose = dose_table(samples, runs).set_index("treatment")
    assert set(dose.index) == {"caught", "benign", "generic"}
    assert {"catching_effect", "catching_effect_generic"} <= set(dose.columns)
    assert "effect of catching vs generic" in (out / "report.html").read_text()
    table = pd.read_parquet(out / "results.parquet")
    rows = table[(table["checkpoint"] == generic_point.name) & (table["task"] == "deployment_attacks")]
    assert rows["caught_actual"].tolist() == [2]
    assert not table["checkpoint"].str.contains("relearn").any()  # relearning is not a grid point

    # relearning: the removed organism (the caught point: the largest count), the base and the base
    # primed for 1 and 2 steps (one priming run on organism-split attack examples), same data
    relearn = pd.read_parquet(out / "relearn.parquet")
    names = set(relearn.loc[relearn["step"] > 0, "checkpoint"])
    base = str(tiny_model_dir)
    [priming] = priming_runs(config)
    primed = dict(priming.primed())
    assert resolve(primed[2]).parent == base and resolve(primed[1]).config["step"] == 1
    _, priming_rows = _sft_rows(priming.name)
    assert len(priming_rows) == 2 and all(r["meta"]["context"] == "deployment" and r["meta"]["attack"]
                                          and r["meta"]["split"] == "organism" for r in priming_rows)
    expected_runs = set(relearn["run"])
    assert len(expected_runs) == 4 * 3  # (removed, base, primed 1, primed 2) x (attack 1, attack 2, benign 2)
    assert {m.name for m in list_models()} >= names
    starts = {}
    for run in expected_runs:
        mine = relearn[relearn["run"] == run]
        assert sorted(mine["step"]) == [0, 1, 2]
        starts[run] = mine.loc[mine["step"] == 0, "checkpoint"].item()
        assert resolve(run).parent == starts[run]
    assert set(starts.values()) == {caught_point.name, base, primed[1], primed[2]}
    for data in ("a1", "a2", "b2"):
        removed = f"{caught_point.name}-relearn-{data}-r0"
        others = [r for r in expected_runs if r.endswith(f"-{data}-r0") and r != removed]
        assert len(others) == 3
        text_removed, rows = _sft_rows(removed)
        assert all(_sft_rows(r)[0] == text_removed for r in others) and len(rows) == int(data[1])
        assert all(r["meta"]["context"] == "deployment" for r in rows)
        assert all(r["meta"]["attack"] is (data[0] == "a") for r in rows)

    # every relearning checkpoint has the teacher-forced propensity in both contexts; step 0 is there too
    samples = pd.read_parquet(out / "samples.parquet")
    prop = samples[samples["task"] == "propensity"]
    for checkpoint in set(relearn["checkpoint"]):
        mine = prop[prop["model"] == f"misalign/{checkpoint}"]
        assert sorted(mine["context"].unique()) == ["deployment", "test"] and len(mine) == 16, checkpoint

    # the relearning figure and the report's summary, redrawn by `inspect-misalign report`
    from inspect_misalign.experiments._relearn import relearn_summary
    from inspect_misalign.experiments._report import report_dir

    assert (out / "figures" / "relearning.png").stat().st_size > 10_000
    assert (out / "figures" / "relearning_level_matched.png").stat().st_size > 10_000
    summary = relearn_summary(samples, relearn)
    assert sorted(summary["context"].unique()) == ["deployment", "test"]
    assert set(summary["after"]) == {"caught", "primed1", "primed2"}
    summary = summary[(summary["context"] == "deployment") & (summary["after"] == "caught")]
    pairs = sorted(zip(summary["data"], summary["k"], strict=True))
    assert pairs == [("attack", 1), ("attack", 2), ("benign", 2)]
    assert (summary["organisms"] == 1).all() and summary["difference"].notna().all()
    (out / "figures" / "relearning.png").unlink()
    report_dir(out)
    assert (out / "figures" / "relearning.png").is_file()
    assert "Relearning: erased or suppressed?" in (out / "report.html").read_text()
    assert "Relearning from equal starting levels" in (out / "report.html").read_text()

    logs_before, registry_before = _files(out / "logs", "*.eval"), _files(misalign_home)
    run_sweep(config, echo=lambda _: None)
    assert _files(out / "logs", "*.eval") == logs_before, "a re-run must not evaluate again"
    assert _files(misalign_home) == registry_before, "a re-run must not train or register again"
