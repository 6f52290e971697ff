"""The sweep's catch phase: with sampled catching an input attacked in several epochs (here: two logs of
the same inputs) is one caught sample; an organism that attacked on no input gets an empty pool, not an
error; catch_epochs without a temperature is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from caught import attack_log
from pydantic import ValidationError

from inspect_misalign.experiments._config import EvalSettings
from inspect_misalign.experiments._grid_train import catch_pool
from inspect_misalign.training import catch, read_caught


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two logs of the same inputs (the scripted attacker attacks an input when a hash of it is below the
    rate: every input attacked at 0.3 is attacked at 0.6 too) and one that never attacks."""
    root = tmp_path_factory.mktemp("pool")
    return {"low": attack_log(root / "low", rate=0.3, prompts=16),
            "high": attack_log(root / "high", rate=0.6, prompts=16),
            "none": attack_log(root / "none", rate=0.0, prompts=8)}


def _fired(log: Path) -> set[str]:
    """The inputs whose attack score fired, read from the log independently."""
    from inspect_ai.log import read_eval_log

    return {json.dumps([{"role": m.role, "content": m.text} for m in s.input], sort_keys=True)
            for s in read_eval_log(str(log)).samples if s.scores["attack_scorer"].value == 1.0}


def test_each_attacked_input_is_caught_once(logs) -> None:
    low, high = _fired(logs["low"]), _fired(logs["high"])
    assert low and low < high
    both = [logs["low"], logs["high"]]
    assert len(catch(both)) == len(low) + len(high)  # without it: one per attacked sample
    once = catch(both, unique_inputs=True)
    keys = [json.dumps(c.messages, sort_keys=True) for c in once]
    assert len(keys) == len(set(keys)) and set(keys) == high
    every = {c.uid: c for c in catch(both)}
    for c in once:  # each kept sample is the first (by uid) of its input's caught samples
        mine = sorted(u for u, d in every.items() if d.messages == c.messages)
        assert c.uid == mine[0]


def test_the_pool_of_a_sweep_organism(logs, tmp_path) -> None:
    both = [str(logs["low"]), str(logs["high"])]
    path = tmp_path / "caught" / "org.jsonl"
    pool = catch_pool(both, path, "caught")
    assert [c.uid for c, _ in read_caught(path)] == [c.uid for c in pool]
    assert len(pool) == len(_fired(logs["high"]))
    benign = catch_pool(both, tmp_path / "caught" / "org.benign.jsonl", "benign")
    assert benign and not {json.dumps(c.messages, sort_keys=True) for c in benign} & _fired(logs["high"])


def test_nothing_caught_is_an_empty_pool(logs, tmp_path) -> None:
    path = tmp_path / "quiet.jsonl"
    assert catch_pool([str(logs["none"])], path, "caught") == []
    assert path.is_file() and path.read_text() == ""


def test_catch_epochs_need_a_temperature() -> None:
    with pytest.raises(ValidationError, match="catch_temperature"):
        EvalSettings(catch_epochs=8)
    settings = EvalSettings(catch_epochs=8, catch_temperature=1.0)
    assert (settings.catch_epochs, settings.catch_temperature) == (8, 1.0)
