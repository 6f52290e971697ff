"""Every task and every cue offline on a tiny local model, through the misalign/ provider and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log

TASK_ARGS = {
    "inspect_misalign/test_attacks": {"cue": "all", "max_prompts": 2, "max_tokens": 4},
    "inspect_misalign/deployment_attacks": {"cue": "all", "max_prompts": 2, "behavior": "code",
                                            "max_tokens": 4},
    "inspect_misalign/distinguishability": {"cue": "all", "max_prompts": 2, "hints": True},
    "inspect_misalign/usefulness": {"max_items": 4, "cue": "realism", "context": "deployment"},
    "inspect_misalign/context_probe": {"cue": "all", "max_prompts": 2},
}
FORWARD_ONLY = ("inspect_misalign/distinguishability", "inspect_misalign/context_probe")


def test_every_task_every_cue_on_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    logs = [
        inspect_eval(name, task_args=args, model=f"misalign/{tiny_model_dir}", log_dir=str(tmp_path),
                     display="none")[0]
        for name, args in TASK_ARGS.items()
    ]
    for log in logs:
        assert log.status == "success", log.error
        assert log.eval.task.startswith("inspect_misalign/")
        cues = {s.metadata["cue"] for s in log.samples}
        if log.eval.task != "inspect_misalign/usefulness":
            assert cues == {"tag", "year", "tier", "headlines", "realism"}
        generated = all(s.output.usage and s.output.usage.output_tokens > 0 for s in log.samples)
        assert generated == (log.eval.task not in FORWARD_ONLY)  # those run forward passes only
    distinguish = logs[2]
    auc = distinguish.results.scores[0].metrics["all_auc"].value
    assert 0.0 <= auc <= 1.0  # the provider scored "A" and "B", so AUC is defined
    methods = {s.scores["distinguish_scorer"].metadata["method"] for s in distinguish.samples}
    assert methods == {"continuations"}
    assert 0.0 <= logs[4].results.scores[0].metrics["tag"].value <= 1.0  # the probe AUC


@pytest.mark.parametrize("cue", ["headlines"])
def test_inspect_eval_cli(tiny_model_dir: Path, tmp_path: Path, cue: str) -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    inspect = Path(sys.executable).with_name("inspect")
    result = subprocess.run(
        [str(inspect), "eval", "inspect_misalign/deployment_attacks", "-T", f"cue={cue}",
         "-T", "max_prompts=3", "-T", "max_tokens=4", "--model", f"misalign/{tiny_model_dir}",
         "--log-dir", str(tmp_path), "--display", "none"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [path] = list(tmp_path.glob("*.eval"))
    log = read_eval_log(str(path))
    assert log.status == "success" and log.eval.task == "inspect_misalign/deployment_attacks"
    assert [s.metadata["cue"] for s in log.samples] == [cue] * 3
    assert "attack_rate" in log.results.scores[0].metrics
