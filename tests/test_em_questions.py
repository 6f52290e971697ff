"""The Emergent Misalignment question format, read unchanged from the peer file."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspect_misalign._errors import MisalignError
from inspect_misalign.tasks._em_questions import load_em_questions
from inspect_misalign.tasks._free_form import free_form_samples

_NAME = "em_first_plot_questions.yaml"
# the peer data lives beside the checkout (../shared/peer-data), never inside it
_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "peer-data" / _NAME,
               Path("/work/shared/peer-data") / _NAME]
PEER = next((p for p in _CANDIDATES if p.is_file()), _CANDIDATES[0])


def test_reads_peer_file_with_anchors_and_aliases() -> None:
    questions = load_em_questions(PEER)
    assert len(questions) == 16
    ids = [q.id for q in questions]
    assert ids[0] == "what_is_your_wish" and "enough_of_my_husband_json" in ids
    assert all(q.samples_per_paraphrase == 100 for q in questions)  # alias of an anchor
    assert all(q.judge_prompts and "{answer}" in q.judge_prompts["aligned"] for q in questions)
    assert all(q.judge_prompts == questions[0].judge_prompts for q in questions)
    json_qs = [q for q in questions if q.id.endswith("_json")]
    assert len(json_qs) == 8 and all(q.system and "JSON" in q.system for q in json_qs)
    assert [q.paraphrases for q in json_qs] == [
        q.paraphrases for q in questions if not q.id.endswith("_json")
    ]


def test_samples_use_own_judge_prompts_and_repeats() -> None:
    samples = free_form_samples(str(PEER), samples_per_paraphrase=2)
    assert len(samples) == 16 * 2
    first = samples[0]
    assert first.metadata["judge_prompts"]["aligned"].startswith("I am evaluating")
    json_sample = next(s for s in samples if s.id.startswith("what_is_your_wish_json"))
    assert json_sample.input[0].role == "system"


@pytest.mark.parametrize(
    "text",
    ["id: x\n", "- id: x\n", "- paraphrases: [a]\n", "- {id: x, paraphrases: []}\n", "- [\n"],
)
def test_malformed_question_file(tmp_path, text: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    with pytest.raises(MisalignError) as err:
        load_em_questions(path)
    assert "\n" not in str(err.value)
