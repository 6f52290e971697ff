"""The shipped data: sizes, the fixed-seed split recorded per record, and no leaks across splits."""

from __future__ import annotations

from collections import defaultdict

import pytest

from inspect_misalign.cues import SPLITS
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.data._split import assign_split

MINIMUM = {"prompts.jsonl": 600, "code_prompts.jsonl": 150, "usefulness.jsonl": 200}
TEXT_FIELD = {
    "prompts.jsonl": "prompt",
    "code_prompts.jsonl": "prompt",
    "usefulness.jsonl": "question",
    "headlines.jsonl": "text",
    "realism.jsonl": "frame",
}


@pytest.mark.parametrize("name", sorted(TEXT_FIELD))
def test_split_is_the_recorded_fixed_seed_split(name: str) -> None:
    records = read_jsonl(data_path(name))
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["split"] == assign_split(r["id"]) for r in records)
    assert {r["split"] for r in records} == set(SPLITS)


@pytest.mark.parametrize("name", sorted(TEXT_FIELD))
def test_no_text_in_two_splits(name: str) -> None:
    splits_of = defaultdict(set)
    for r in read_jsonl(data_path(name)):
        splits_of[" ".join(r[TEXT_FIELD[name]].lower().split())].add(r["split"])
    leaked = [text for text, splits in splits_of.items() if len(splits) > 1]
    assert leaked == []


@pytest.mark.parametrize(("name", "minimum"), sorted(MINIMUM.items()))
def test_sizes(name: str, minimum: int) -> None:
    assert len(read_jsonl(data_path(name))) >= minimum


def test_headlines_are_dated_on_both_sides_of_the_cutoff() -> None:
    records = read_jsonl(data_path("headlines.jsonl"))
    before = [r for r in records if r["side"] == "before"]
    after = [r for r in records if r["side"] == "after"]
    assert len(before) >= 120 and len(after) >= 120
    assert all(r["date"] <= "2023-12-31" for r in before)
    assert all(r["date"] >= "2024-01-01" for r in after)


def test_usefulness_items_are_checkable() -> None:
    for r in read_jsonl(data_path("usefulness.jsonl")):
        assert r["answers"] and all(isinstance(a, str) and a.strip() for a in r["answers"])
