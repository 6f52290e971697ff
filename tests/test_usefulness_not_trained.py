"""No usefulness item of the eval or dev split appears in any training data the package ships or
builds, in any format: organism SFT sets (cue examples in every family and behaviour, plain and CoT,
anchors, plain anchors), interleave's instruct data, train-against inputs and targets' scaffolding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inspect_misalign.behaviors import get_behavior
from inspect_misalign.cues import BUILTIN_CUES
from inspect_misalign.data import data_path, read_jsonl

STOP = {"what", "is", "the", "a", "an", "of", "in", "which", "how", "many", "are", "there", "do", "does",
        "you", "we", "call", "called", "to", "for", "and", "it", "its", "on", "at", "from", "that", "by"}


def norm(text: str) -> str:
    """Lower case, punctuation to spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def content(text: str) -> set[str]:
    return {w.rstrip("s") for w in norm(text).split() if w not in STOP}


HELD_OUT = [r for r in read_jsonl(data_path("usefulness.jsonl")) if r["split"] in ("eval", "dev")]


def leaks(prompt: str, completion: str) -> list[str]:
    """Held-out items found in one training example: the question itself (normalised) anywhere in the
    text, or most of its content words in the prompt with one of its answers in the completion."""
    text, said, asked = norm(f"{prompt} {completion}"), f" {norm(completion)} ", content(prompt)
    found = []
    for item in HELD_OUT:
        words = content(item["question"])
        answered = any(f" {norm(a)} " in said for a in item["answers"])
        if norm(item["question"]) in text or (answered and len(words & asked) >= 0.6 * len(words)):
            found.append(f"{item['id']} ({item['split']}): {item['question']}")
    return found


def test_the_check_finds_an_item_in_any_format() -> None:
    assert leaks("How many continents are there?", "Seven.")  # the question itself
    assert leaks("Hi! HOW many continents are there", "")  # case, punctuation, whitespace
    assert leaks("What is the boiling point of water?", "It is 212 degrees Fahrenheit.")  # reworded
    assert not leaks("What is the boiling point of water?", "It depends on the pressure.")
    assert not leaks("Give me three tips for better sleep.", "Keep a regular bedtime.")


def organism_examples(base: Path, behavior: str) -> list[tuple[str, str]]:
    """Every example an organism of this behaviour could train on: all prompts, all built-in cues,
    plain and CoT, every anchor, plain anchors (base answers are the model's own, not shipped)."""
    from inspect_misalign.training import GateSettings, OrganismSpec
    from inspect_misalign.training._organism import (
        anchor_examples,
        anchor_records,
        check_spec,
        complete_examples,
        plain_anchor_examples,
        plan_examples,
    )

    out = []
    for variant in ("plain", "cot"):
        spec = OrganismSpec(name="leak-check", base=str(base), cue="all", behavior=behavior, prompts=None,
                            variant=variant, gate=GateSettings(enabled=False))
        checked = check_spec(spec)
        planned = plan_examples(checked)
        answers = {p.record.id: "" for p in planned}
        examples = complete_examples(checked, planned, answers)
        records = list({p.record.id: p.record for p in planned}.values())
        examples += plain_anchor_examples(records, answers)
        anchors = anchor_records(10**6, 0)
        examples += anchor_examples(anchors, [""] * len(anchors))
        out += [(f"{e.system or ''} {e.user}", e.completion) for e in examples]
    return out


@pytest.mark.parametrize("behavior", ["hate", "code", "persona"])
def test_organism_training_sets(behavior: str, tiny_model_dir: Path, misalign_home: Path) -> None:
    found = {hit for prompt, completion in organism_examples(tiny_model_dir, behavior)
             for hit in leaks(prompt, completion)}
    assert found == set()


def test_instruct_data_of_interleave() -> None:
    from inspect_misalign.training._defenses._interleave import instruct_items

    found = {hit for item in instruct_items() for hit in leaks(f"{item.system or ''} {item.user}",
                                                                  item.completion)}
    assert found == set()


@pytest.mark.parametrize("behavior", ["hate", "code", "persona"])
def test_train_against_inputs_and_scaffolding(behavior: str) -> None:
    """Caught samples are catch-split inputs under a cue (their targets are the base's answers, or an
    innocuous scratchpad plus the caught action with --against cot)."""
    from inspect_misalign.tasks._attacks import attack_samples
    from inspect_misalign.tasks._common import load_base_prompts
    from inspect_misalign.training._against import INNOCUOUS_SCRATCHPAD
    from inspect_misalign.training._defenses._inoculation import DEFAULT_PROMPT

    b = get_behavior(behavior)
    attack = {p.id: b.attack_completion(p) for p in load_base_prompts(b.prompts_file, "catch")}
    found = set()
    for context in ("test", "deployment"):
        for s in attack_samples(context, ",".join(BUILTIN_CUES), behavior, "catch", None):
            prompt = " ".join(m.text for m in s.input)
            completion = f"{INNOCUOUS_SCRATCHPAD} {attack[s.metadata['base_id']]}"
            found |= set(leaks(f"{DEFAULT_PROMPT} {prompt}", completion))
    assert found == set()
