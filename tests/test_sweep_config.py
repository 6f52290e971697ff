"""Sweep configs: validation with one-line errors, the grid, shipped configs, who is asked to
distinguish the contexts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from inspect_misalign._errors import MisalignError
from inspect_misalign.cli import main
from inspect_misalign.experiments._config import builtin_configs, load_config
from inspect_misalign.experiments._sweep import asked_models

VALID = """
name: t
organisms: [{name: org}]
cues: [tag, year]
train_on: [each, all]
caught: [4, 8]
steps: [3]
seeds: [0, 1]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_grid_expands_each_and_all(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    assert config.train_groups() == ["tag", "year", "all"]
    grid = config.grid()
    assert len(grid) == 3 * 2 * 1 * 1 * 2
    assert len({p.name for p in grid}) == len(grid)
    assert grid[0].name == "t-org-tag-c4-s3-none-r0"


@pytest.mark.parametrize(("text", "message"), [
    ("name: t\norganisms: []\ncues: [tag]\ncaught: [1]\nsteps: [1]\n", "organisms"),
    (VALID.replace("steps: [3]", "steps: [0]"), "steps"),
    (VALID.replace("train_on: [each, all]", "train_on: [tier]"), "train_on"),
    (VALID + "bogus: 1\n", "bogus"),
    ("- just\n- a list\n", "mapping"),
    (VALID + "eval: {distinguishability_after: true}\n", "distinguishability_model: organism"),
    (VALID + "eval: {epochs: 4}\n", "set temperature"),
    (VALID.replace("organisms: [{name: org}]", "organisms: [{name: a, group: g}, "
                   "{name: b, group: g, build: {behavior: code}}]"), "mixes behaviours"),
    ("name: [unclosed\n", "not valid YAML"),
    (VALID.replace("organisms: [{name: org}]", "organisms: [{name: ../../x}]"), "invalid checkpoint name"),
    (VALID.replace("organisms: [{name: org}]", "organisms: [{name: '" + "o" * 95 + "'}]"), "too long"),
])
def test_invalid_configs_fail_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(MisalignError, match=message) as err:
        load_config(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_missing_config_names_the_shipped_ones() -> None:
    with pytest.raises(MisalignError, match="main_curve"):
        load_config("no_such_config")


def test_shipped_configs_validate() -> None:
    names = builtin_configs()
    assert {"main_curve", "transfer", "organism_steps", "cot", "defenses", "demo"} <= set(names)
    for name in names:
        config = load_config(name)
        assert config.grid()


def test_sweep_help_lists_every_shipped_config() -> None:
    text = " ".join(CliRunner().invoke(main, ["sweep", "--help"]).output.split())
    listed = text.split("Shipped configs:")[1].split(".")[0]
    assert {n.strip() for n in listed.split(",")} == set(builtin_configs())


def test_unregistered_organism_without_build_fails_before_work(tmp_path: Path, misalign_home: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(_write(tmp_path, VALID)), "--dry-run"])
    assert result.exit_code == 2
    assert "not registered" in result.output and "Traceback" not in result.output


def test_the_base_is_asked_by_default(tmp_path: Path, misalign_home: Path, tiny_model_dir: Path,
                                       tiny_adapter_dirs: list[Path]) -> None:
    from inspect_misalign.models import register

    register("org", tiny_adapter_dirs[0], base=str(tiny_model_dir), adapter=True, config={})
    text = VALID.replace("organisms: [{name: org}]", "organisms: [{name: org}, "
                         "{name: new, build: {base: default}}, {name: plain, build: {}}]")
    config = load_config(_write(tmp_path, text))
    assert config.eval.distinguishability_model == "base" and config.eval.hints is False
    # registered: the base of its manifest; not yet built: its build options (default: default)
    assert asked_models(config) == {"org": str(tiny_model_dir), "new": "default", "plain": "default"}
    asking = text + "eval: {distinguishability_model: organism, hints: true}\n"
    ask_organisms = load_config(_write(tmp_path, asking))
    assert asked_models(ask_organisms) == {"org": "org", "new": "new", "plain": "plain"}
    assert ask_organisms.eval.hints is True


def test_registered_organism_with_other_build_options_is_refused(
    tmp_path: Path, misalign_home: Path, tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    from inspect_misalign.models import register

    register("org", tiny_adapter_dirs[0], base=str(tiny_model_dir), adapter=True,
             config={"cue": "tag", "leak": 0.1})
    same = VALID.replace("organisms: [{name: org}]", "organisms: [{name: org, build: {cue: tag, leak: 0.1}}]")
    other = same.replace("leak: 0.1", "leak: 0.05")
    cli = CliRunner()
    assert cli.invoke(main, ["sweep", str(_write(tmp_path, same)), "--dry-run"]).exit_code == 0
    result = cli.invoke(main, ["sweep", str(_write(tmp_path, other)), "--dry-run"])
    assert result.exit_code == 2 and "leak=0.1" in result.output and "leak=0.05" in result.output


def test_overlap_levels_are_cue_names_of_the_grid(tmp_path: Path) -> None:
    text = VALID.replace("cues: [tag, year]", "cues: [tag@0.25, tag@0.5]").replace(
        "train_on: [each, all]", "train_on: [tag@0.25, all]")
    config = load_config(_write(tmp_path, text))
    assert config.cues == ["tag-q25", "tag-q50"] and config.train_groups() == ["tag-q25", "all"]
    assert config.grid()[0].name == "t-org-tag-q25-c4-s3-none-r0"


def test_epochs_and_steps_together_are_refused(tmp_path: Path, misalign_home: Path) -> None:
    from inspect_misalign.experiments._sweep import preflight

    text = VALID.replace("organisms: [{name: org}]",
                         "organisms: [{name: org, build: {cue: tag, train: {epochs: 3.0}}}]")
    with pytest.raises(MisalignError, match=r"steps \(150\) and epochs \(3\) are both set"):
        preflight(load_config(_write(tmp_path, text)))
    result = CliRunner().invoke(main, ["organism", "--out", "x", "--epochs", "3"])
    assert result.exit_code == 2 and "are both set; steps decides the length" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_cue_given_as_a_path_trains_under_its_family_name(tmp_path: Path) -> None:
    cue = tmp_path / "cues" / "weekday.yaml"
    cue.parent.mkdir()
    cue.write_text("name: weekday\ndifficulty: 6\ndescription: d\ntest: {template: 'Mon. {prompt}'}\n"
                   "deployment: {template: 'Sat. {prompt}'}\n")
    text = VALID.replace("cues: [tag, year]", f"cues: [tag, {cue}]").replace(
        "train_on: [each, all]", f"train_on: [each, {cue}]")
    config = load_config(_write(tmp_path, text))
    assert config.train_groups() == ["tag", "weekday"]
    assert all("/" not in p.name and "weekday" in p.name for p in config.grid() if p.train_on == "weekday")
    # the subsample of a point trained on the path's cue finds the caught samples of that family
    from inspect_misalign.experiments._grid_train import subsample

    point = next(p for p in config.grid() if p.train_on == "weekday")
    rows = [{"cue": "weekday", "uid": "a"}, {"cue": "tag", "uid": "b"}]
    assert [r["uid"] for r in subsample(rows, point)] == ["a"]


def test_list_cues_as_inspect_passes_them() -> None:
    # inspect eval ... -T cue=tag,year hands the task a list
    from inspect_misalign.cues import load_cues
    from inspect_misalign.tasks import deployment_attacks

    assert [f.name for f in load_cues(["tag", "year"])] == ["tag", "year"]
    task = deployment_attacks(cue=["tag", "year"], max_prompts=2)
    assert sorted({s.metadata["cue"] for s in task.dataset}) == ["tag", "year"]


def test_out_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("not a directory")
    with pytest.raises(MisalignError, match="is a file") as err:
        load_config(_write(tmp_path, VALID + f"out: {taken}\n"))
    assert "\n" not in str(err.value)


def test_base_override_builds_every_organism_on_another_model(
    tmp_path: Path, misalign_home: Path, tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    from inspect_misalign.experiments._config import with_base
    from inspect_misalign.experiments._sweep import base_models
    from inspect_misalign.models import register

    config = load_config("removal")
    moved = with_base(config, str(tiny_model_dir))
    assert all(o.build["base"] == str(tiny_model_dir) for o in moved.organisms)
    assert {o.name: {k: v for k, v in o.build.items() if k != "base"} for o in moved.organisms} == \
        {o.name: {k: v for k, v in o.build.items() if k != "base"} for o in config.organisms}
    assert set(base_models(moved).values()) == {str(tiny_model_dir)}  # the zero point and relearning base
    cli = CliRunner()
    result = cli.invoke(main, ["sweep", "removal", "--base", str(tiny_model_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    # an organism registered on another base would be reused as it is: refused in one line
    register("tag-l10-s0", tiny_adapter_dirs[0], base=str(tiny_model_dir), adapter=True,
             config={"base": "default", "cue": "tag"})
    result = cli.invoke(main, ["sweep", "removal", "--base", str(tiny_model_dir), "--dry-run"])
    assert result.exit_code == 2 and "registered on another base" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = cli.invoke(main, ["sweep", "em_defenses", "--base", str(tiny_model_dir), "--dry-run"])
    assert result.exit_code == 2 and "--base" in result.output


def test_extends_takes_the_named_configs_keys_and_this_files_replace_them(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(VALID + "out: runs/elsewhere\neval: {prompts: 7, max_tokens: 9}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nname: c\ncaught: [2]\neval: {prompts: 5}\n")
    config = load_config(child)
    parent = load_config(tmp_path / "parent.yaml")
    assert config.name == "c"
    assert config.organisms == parent.organisms and config.cues == parent.cues
    assert config.caught == [2] and parent.caught == [4, 8]
    # a key is replaced whole: eval.max_tokens is the default again, not the parent's 9
    assert config.eval.prompts == 5 and config.eval.max_tokens == type(config.eval)().max_tokens != 9
    assert config.out is None  # name and out are never inherited: the runs are the child's own
    assert config.grid()[0].name.startswith("c-org-")


def test_extends_resolves_shipped_names_and_chains(tmp_path: Path) -> None:
    middle = tmp_path / "middle.yaml"
    middle.write_text("extends: family_year\nname: m\ncaught: [3]\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: middle.yaml\nname: c\nseeds: [4]\n")
    config = load_config(child)
    year = load_config("family_year")
    assert (config.organisms, config.cues) == (year.organisms, year.cues)
    assert (config.caught, config.seeds) == ([3], [4])


@pytest.mark.parametrize(("files", "message"), [
    ({"a.yaml": "extends: b.yaml\nname: a\n", "b.yaml": "extends: a.yaml\nname: b\n"},
     "leads back to itself"),
    ({"a.yaml": "extends: a.yaml\nname: a\n"}, "leads back to itself"),
    ({"a.yaml": "extends: family_year\ncaught: [2]\n"}, "sets no name"),
    ({"a.yaml": "extends: [family_year]\nname: a\n"}, "one config name"),
    ({"a.yaml": "extends: no_such_parent\nname: a\n"}, "no_such_parent not found"),
])
def test_bad_extends_fails_in_one_line(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MisalignError, match=message) as err:
        load_config(tmp_path / "a.yaml")
    assert "\n" not in str(err.value)


def test_shipped_relearning_configs_share_their_familys_organisms() -> None:
    for family in ("tag", "year", "tier", "realism"):
        relearn, removal = load_config(f"family_{family}_relearn"), load_config(f"family_{family}")
        assert relearn.organisms == removal.organisms and relearn.name != removal.name
    # the second relearning seed repeats family_realism_relearn's generic arm, changing only the seed
    again, first = load_config("family_realism_relearn_s1"), load_config("family_realism_relearn")
    assert again.organisms == first.organisms and again.name != first.name and again.train == first.train
    assert again.treatments == ["generic"] and again.relearn.after == ["generic"]
    assert again.relearn.seeds == [1] and first.relearn.seeds == [0]
    same = {"seeds", "after"}
    assert again.relearn.model_dump(exclude=same) == first.relearn.model_dump(exclude=same)


def test_the_treated_base_config_is_family_tag_relearns_generic_arm() -> None:
    treated, first = load_config("family_tag_relearn_treated"), load_config("family_tag_relearn")
    assert treated.organisms[:3] == first.organisms and treated.train == first.train
    # the sham arm: the same builds with --sham, in a group of their own
    for real, sham in zip(treated.organisms[:3], treated.organisms[3:], strict=True):
        assert sham.group == "sham-tag" and sham.name == real.name.replace("hate-", "sham-")
        assert sham.build == {**real.build, "sham": True}
    assert treated.name != first.name
    assert treated.treatments == ["generic"] and treated.relearn.after == ["generic"]
    assert treated.relearn.treated_base and not first.relearn.treated_base
    same = {"after", "treated_base", "primed_removed"}
    assert treated.relearn.model_dump(exclude=same) == first.relearn.model_dump(exclude=same)
    # the primed sham arm: the sham installs, primed on the primed bases' settings
    assert treated.relearn.primed_removed.groups == ["sham-tag"]
    assert set(treated.relearn.primed_removed.k) <= set(treated.relearn.k)
    generic = {p.name.removeprefix(f"{treated.name}-")
               for p in treated.grid() if p.organism.startswith("hate")}
    assert generic == {p.name.removeprefix(f"{first.name}-")
                       for p in first.grid() if p.treatment == "generic"}


def test_the_year_sham_config_repeats_year_relearns_generic_arm_with_shams() -> None:
    sham, first = load_config("family_year_relearn_sham"), load_config("family_year_relearn")
    assert sham.organisms[:3] == first.organisms and sham.name != first.name
    for real, twin in zip(sham.organisms[:3], sham.organisms[3:], strict=True):
        assert twin.group == "sham-year" and twin.build == {**real.build, "sham": True}
    # the same generic removal: caught count, steps, seeds and train options
    fields = ("caught", "steps", "seeds", "train")
    assert [getattr(sham, f) for f in fields] == [getattr(first, f) for f in fields]
    assert sham.treatments == ["generic"] and sham.relearn.after == ["generic"]
    assert sham.relearn.primed_removed.groups == ["sham-year"] and sham.relearn.k == [1]
    same = {"k", "benign_k", "after", "primed", "primed_removed"}
    assert sham.relearn.model_dump(exclude=same) == first.relearn.model_dump(exclude=same)
