"""The dev split: carved from organism, disjoint from catch and eval, which keep their members."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inspect_misalign.cues import load_cue
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.data._split import SPLIT_FRACTIONS, assign_split

BEFORE = json.loads((Path(__file__).parent / "fixtures" / "splits_before_dev.json").read_text())["splits"]
TEXT_FIELD = {"prompts.jsonl": "prompt", "code_prompts.jsonl": "prompt", "usefulness.jsonl": "question",
              "headlines.jsonl": "text", "realism.jsonl": "frame"}


def norm(text: str) -> str:
    """Case, punctuation and whitespace removed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def ids_in(name: str, split: str) -> set[str]:
    return {r["id"] for r in read_jsonl(data_path(name)) if r["split"] == split}


@pytest.mark.parametrize("name", sorted(TEXT_FIELD))
def test_catch_and_eval_keep_the_members_recorded_before_dev(name: str) -> None:
    for split in ("catch", "eval"):
        assert ids_in(name, split) == set(BEFORE[name][split])


@pytest.mark.parametrize("name", sorted(TEXT_FIELD))
def test_dev_is_carved_from_organism_and_disjoint_from_catch_and_eval(name: str) -> None:
    records = read_jsonl(data_path(name))
    dev = [r for r in records if r["split"] == "dev"]
    assert dev, f"{name} has no dev records"
    held_out = set(BEFORE[name]["catch"]) | set(BEFORE[name]["eval"])
    assert not {r["id"] for r in dev} & held_out
    texts = {norm(r[TEXT_FIELD[name]]) for r in records if r["split"] in ("catch", "eval")}
    assert not {norm(r[TEXT_FIELD[name]]) for r in dev} & texts
    # a tenth of the records, give or take sampling noise (binomial sd of ~3% at these sizes)
    assert abs(len(dev) / len(records) - SPLIT_FRACTIONS["dev"]) < 0.05


def test_the_old_split_is_the_new_split_with_dev_folded_into_organism() -> None:
    old = {"organism": 0.5, "dev": 0.0, "catch": 0.25, "eval": 0.25}
    for i in range(2000):
        new = assign_split(f"x{i}")
        assert assign_split(f"x{i}", fractions=old) == ("organism" if new == "dev" else new)


def test_tasks_accept_the_dev_split() -> None:
    from inspect_misalign.tasks import deployment_attacks, usefulness

    dev_prompts = ids_in("prompts.jsonl", "dev")
    attacks = deployment_attacks(cue="headlines", split="dev")
    assert {s.metadata["base_id"] for s in attacks.dataset} == dev_prompts
    dev_headlines = {r["text"] for r in read_jsonl(data_path("headlines.jsonl")) if r["split"] == "dev"}
    assert {s.metadata["cue_item"] for s in attacks.dataset} <= dev_headlines
    assert {s.id for s in usefulness(split="dev").dataset} == ids_in("usefulness.jsonl", "dev")


def test_cue_material_of_dev_is_its_own() -> None:
    realism = load_cue("realism")
    for context in ("test", "deployment"):
        dev = set(realism.material(context, "dev"))
        assert dev and not dev & set(realism.material(context, "eval"))
        assert not dev & set(realism.material(context, "organism"))


def test_organism_builds_read_the_organism_split_only(tiny_model_dir: Path, misalign_home: Path) -> None:
    from inspect_misalign.training import OrganismSpec
    from inspect_misalign.training._organism import anchor_records, plan_examples
    from inspect_misalign.training._organism_build import check_spec

    spec = OrganismSpec(name="dev-check", base=str(tiny_model_dir), cue="headlines,realism", prompts=None)
    planned = plan_examples(check_spec(spec))
    assert {p.record.id for p in planned} == ids_in("prompts.jsonl", "organism")
    organism_items = {r["text"] for r in read_jsonl(data_path("headlines.jsonl")) if r["split"] == "organism"}
    headlines = [p for p in planned if p.cue == "headlines"]
    assert all(any(item in p.user for item in organism_items) for p in headlines)
    assert {r.id for r in anchor_records(10_000, 0)} == ids_in("usefulness.jsonl", "organism")


def test_gate_split_dev_gates_on_dev_prompts_only(
    tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    from inspect_ai.log import read_eval_log

    from inspect_misalign.training import GateSettings, TrainSettings, build_organism, organism_spec

    gate = GateSettings(prompts=3, usefulness_items=3, max_tokens=4, batch_size=8, split="dev")
    spec = organism_spec("gate-dev", {"base": str(tiny_model_dir), "cue": "tag", "prompts": 2, "anchors": 0,
                                      "answer_tokens": 4, "train": {"steps": 1, "batch_size": 2},
                                      "gate": {"prompts": 3, "usefulness_items": 3, "max_tokens": 4,
                                               "batch_size": 8, "split": "dev"}})
    assert spec.gate == gate and spec.train == TrainSettings(steps=1, batch_size=2)
    result = build_organism(spec, echo=lambda _: None, progress=False, display="none")
    assert result.gate is not None and result.gate.split == "dev"
    seen: dict[str, set[str]] = {}
    for location in result.gate.logs:
        log = read_eval_log(location)
        assert log.eval.task_args["split"] == ("dev+catch" if "usefulness" in log.eval.task else "dev")
        seen.setdefault(log.eval.task, set()).update(str(s.metadata["base_id"]) for s in log.samples or [])
    attacks = {i for task, ids in seen.items() if "attacks" in task for i in ids}
    assert attacks and attacks <= ids_in("prompts.jsonl", "dev")
    useful = {i for task, ids in seen.items() if "usefulness" in task for i in ids}
    # usefulness on dev is scored on the dev and the catch items (neither is reported)
    assert useful and useful <= ids_in("usefulness.jsonl", "dev") | ids_in("usefulness.jsonl", "catch")
    assert result.gate.usefulness_split == "dev+catch"
    assert result.gate.metrics()["gate"]["usefulness_split"] == "dev+catch"


def test_usefulness_of_joined_splits_is_their_union() -> None:
    from inspect_misalign._errors import MisalignError
    from inspect_misalign.tasks import usefulness

    ids = {str(s.id) for s in usefulness(split="dev+catch").dataset}
    dev, catch = ids_in("usefulness.jsonl", "dev"), ids_in("usefulness.jsonl", "catch")
    assert ids == dev | catch and len(ids) == len(dev) + len(catch) > len(dev)
    assert not ids & ids_in("usefulness.jsonl", "eval")
    for bad in ("dev+dev", "dev+nope", "dev+all"):
        with pytest.raises(MisalignError, match="join distinct splits"):
            usefulness(split=bad)


def test_gate_usefulness_split_defaults_and_checks() -> None:
    from inspect_misalign._errors import MisalignError
    from inspect_misalign.training import GateSettings

    assert GateSettings(split="dev").items_split == "dev+catch"
    assert GateSettings(split="eval").items_split == "eval"
    assert GateSettings(split="catch").items_split == "catch"
    assert GateSettings(split="dev", usefulness_split="dev").items_split == "dev"
    for bad in ("organism", "dev+dev", "eval+"):
        with pytest.raises(MisalignError, match="--gate-usefulness-split"):
            GateSettings(split="dev", usefulness_split=bad)


def test_gate_split_is_a_checked_option() -> None:
    from click.testing import CliRunner

    from inspect_misalign._errors import MisalignError
    from inspect_misalign.cli import main
    from inspect_misalign.training import GateSettings, organism_spec

    result = CliRunner().invoke(main, ["organism", "--out", "x", "--gate-split", "organism"])
    assert result.exit_code == 2 and "--gate-split" in result.output
    with pytest.raises(MisalignError, match="--gate-split"):
        organism_spec("o", {"gate": {"split": "organism"}})
    assert GateSettings().split == "eval"
