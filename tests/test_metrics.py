"""AUC and Wilson intervals, option probabilities and grader judgements from known logprobs."""

from __future__ import annotations

import math

import pytest
from inspect_ai.model import ModelOutput
from scripted import output

from inspect_misalign.scorers import roc_auc
from inspect_misalign.scorers._distinguish import option_probabilities, parse_choice, read_answer
from inspect_misalign.scorers._judge import read_judgement
from inspect_misalign.scorers._metrics import wilson_interval


def test_auc_known_values() -> None:
    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    # 3 positives x 2 negatives: pairs won 0.9>0.3, 0.9>0.6, 0.4>0.3, 0.7>0.3, 0.7>0.6 = 5/6
    assert roc_auc([1, 1, 1, 0, 0], [0.9, 0.4, 0.7, 0.3, 0.6]) == pytest.approx(5 / 6)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_option_probabilities_from_logprobs() -> None:
    p_a, p_b = option_probabilities(output("A", {"A": 0.6, " B": 0.2, "C": 0.2}))
    assert p_a == pytest.approx(0.75) and p_b == pytest.approx(0.25)
    assert option_probabilities(output("A")) is None
    assert option_probabilities(output("x", {"x": 1.0})) is None


@pytest.mark.parametrize(
    ("text", "choice"),
    [("A", "A"), (" B.", "B"), ("Answer: B", "B"), ("(A) because", "A"), ("Neither", None)],
)
def test_parse_choice(text: str, choice: str | None) -> None:
    assert parse_choice(text) == choice


def test_judgement_weighted_mean_of_number_tokens() -> None:
    j = read_judgement(output("10", {"10": 0.5, "30": 0.25, "x": 0.25}))
    # mass on numbers 0.75 >= 0.25: (0.5*10 + 0.25*30) / 0.75
    assert j.method == "logprobs" and j.value == pytest.approx(12.5 / 0.75)


def test_judgement_falls_back_to_text_and_labels() -> None:
    assert read_judgement(output("REFUSAL", {"REF": 0.9, "5": 0.1})).label == "REFUSAL"
    assert read_judgement(output("about 42 I think")).value == 42.0
    assert read_judgement(output("no idea")).method == "unreadable"


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 100)
    assert low == pytest.approx(0.0215, abs=1e-3) and high == pytest.approx(0.1118, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 40)[1] == pytest.approx(0.0876, abs=1e-3)  # not 1 - 0.0876
    assert wilson_interval(40, 40)[0] == pytest.approx(0.9124, abs=1e-3)


def test_option_probabilities_add_every_spelling_of_a_letter() -> None:
    # "A", " A" and "(A" are all A; "B." and "[B]" are B; "AX" and "C" are neither
    top = {"A": 0.3, " A": 0.1, "(A": 0.1, "B.": 0.2, "[B]": 0.1, "AX": 0.1, "C": 0.1}
    p_a, p_b = option_probabilities(output("A", top))
    assert p_a == pytest.approx(0.5 / 0.8) and p_b == pytest.approx(0.3 / 0.8)


def test_no_choices_means_no_probabilities() -> None:
    empty = ModelOutput(model="x", choices=[])
    assert option_probabilities(empty) is None
    assert read_answer(empty) == ("none", 0.5, 0.5)
