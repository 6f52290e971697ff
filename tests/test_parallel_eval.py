"""eval.workers: one eval set shared out to worker processes gives the logs of one process, resumably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inspect_ai import Task
from inspect_ai.log import read_eval_log

from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._config import SweepConfig
from inspect_misalign.experiments._parallel_eval import (
    build_task,
    merge,
    shares,
    stage,
    staging_dir,
    task_recipe,
)
from inspect_misalign.experiments._sweep import _eval_set
from inspect_misalign.tasks import propensity


def test_shares_deal_every_model_once_and_none_empty() -> None:
    models = [f"m{i}" for i in range(5)]
    assert shares(models, 2) == [["m0", "m2", "m4"], ["m1", "m3"]]
    assert shares(models[:1], 3) == [["m0"]]
    assert sorted(m for s in shares(models, 4) for m in s) == models


def test_a_registered_task_is_rebuilt_with_its_arguments() -> None:
    task = propensity(cue="tier", behavior="hate", split="eval", context="both", max_prompts=3)
    recipe = task_recipe(task)
    assert recipe == ("inspect_misalign/propensity", {"cue": "tier", "behavior": "hate", "split": "eval",
                                                      "context": "both", "max_prompts": 3})
    again = build_task(recipe)
    def text(t: Task) -> list[tuple]:
        return [(s.id, s.input[-1].text if isinstance(s.input, list) else s.input) for s in t.dataset]

    assert text(again) == text(task)
    assert task_recipe("inspect_misalign/usefulness") == "inspect_misalign/usefulness"


def test_an_ad_hoc_task_cannot_go_to_a_worker() -> None:
    with pytest.raises(MisalignError, match="eval.workers: 1") as err:
        task_recipe(Task(name="adhoc"))
    assert "\n" not in str(err.value)


def _scores(location: str) -> tuple[str, dict]:
    log = read_eval_log(location)
    assert log.status == "success" and log.samples
    scores = {}
    for sample in log.samples:
        for name, score in (sample.scores or {}).items():
            values = score.value if isinstance(score.value, dict) else {"value": score.value}
            scores.update({(sample.id, sample.epoch, name, k): float(v) for k, v in values.items()
                           if isinstance(v, int | float)})
    assert scores
    return log.eval.model, scores


def test_two_workers_give_the_logs_of_one_and_resume(
        tmp_path: Path, misalign_home: Path, tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    from inspect_misalign.models import register

    register("full", tiny_model_dir)
    for i, adapter in enumerate(tiny_adapter_dirs):
        register(f"a{i}", adapter, base=str(tiny_model_dir), adapter=True)
    models = ["misalign/full", "misalign/a0", "misalign/a1"]

    def config(workers: int) -> SweepConfig:
        return SweepConfig.model_validate({
            "name": "t", "organisms": [{"name": "full"}], "cues": ["tier"], "caught": [1], "steps": [1],
            "eval": {"prompts": 2, "max_tokens": 4, "batch_size": 4, "workers": workers}})

    def task() -> Task:
        return propensity(cue="tier", behavior="hate", split="eval", context="both", max_prompts=2)

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread in every process: the same float reductions, the same scores
    try:
        one = _eval_set([task()], models, tmp_path / "one", config(1))
        two = _eval_set([task()], models, tmp_path / "two", config(2))
    finally:
        torch.set_num_threads(threads)
    assert len(two) == len(models) == len({Path(p).name for p in two})
    serial, parallel = dict(map(_scores, one)), dict(map(_scores, two))
    assert set(parallel) == set(models)
    for m in models:  # the same scores, whichever process measured them
        assert parallel[m].keys() == serial[m].keys()
        keys = list(serial[m])
        assert [parallel[m][k] for k in keys] == pytest.approx([serial[m][k] for k in keys], abs=1e-5)
    # two processes ran (one eval run each: a1 and full in one, a0 in the other; one process gives one run),
    # they shared one eval-set id, and a later run (one process) finds every task done
    headers = {read_eval_log(p, header_only=True).eval.model: read_eval_log(p, header_only=True).eval
               for p in two}
    assert len({h.run_id for h in headers.values()}) == 2
    assert headers["misalign/full"].run_id == headers["misalign/a1"].run_id != headers["misalign/a0"].run_id
    assert len({read_eval_log(p, header_only=True).eval.run_id for p in one}) == 1
    assert len({h.eval_set_id for h in headers.values()}) == 1
    before = sorted((tmp_path / "two").glob("*.eval"))
    again = _eval_set([task()], models, tmp_path / "two", config(1))
    assert sorted((tmp_path / "two").glob("*.eval")) == before
    assert sorted(Path(p).name for p in again) == sorted(Path(p).name for p in two)
    # the workers wrote in their own directories, which are gone; one manifest lists every model's task
    assert not list(tmp_path.glob(".two.worker*"))
    manifest = json.loads((tmp_path / "two" / "eval-set.json").read_text())
    assert sorted(t["model"] for t in manifest["tasks"]) == sorted(models)


def test_merge_moves_new_logs_mirrors_clean_up_and_joins_manifests(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "old-a.eval").write_text("a")
    (log_dir / "old-b.eval").write_text("b")
    (log_dir / "eval-set.json").write_text("{}")
    (log_dir / "notes.txt").write_text("kept")
    stagings = [staging_dir(log_dir, i) for i in range(2)]
    staged = set()
    for s in stagings:
        staged = stage(log_dir, s)
    assert staged == {"old-a.eval", "old-b.eval"}
    assert all(s.parent == tmp_path for s in stagings)
    # worker 0 replaced old-a by a new log; worker 1 wrote one new log and kept both old ones
    (stagings[0] / "old-a.eval").unlink()
    (stagings[0] / "new-a.eval").write_text("A")
    (stagings[1] / "new-c.eval").write_text("C")
    for i, s in enumerate(stagings):
        (s / "eval-set.json").write_text(json.dumps({"eval_set_id": "x", "tasks": [
            {"task_id": f"t{i}", "model": f"m{i}"}, {"task_id": "shared", "model": "m"}]}))
        (s / ".eval-set-id").write_text("x")
    merge(log_dir, stagings, staged)
    assert sorted(p.name for p in log_dir.iterdir()) == [
        ".eval-set-id", "eval-set.json", "new-a.eval", "new-c.eval", "notes.txt", "old-b.eval"]
    assert (log_dir / "new-a.eval").read_text() == "A" and (log_dir / "old-b.eval").read_text() == "b"
    tasks = json.loads((log_dir / "eval-set.json").read_text())["tasks"]
    assert sorted(t["task_id"] for t in tasks) == ["shared", "t0", "t1"]
    assert not any(s.exists() for s in stagings)
