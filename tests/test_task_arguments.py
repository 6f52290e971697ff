"""Bad task arguments: a one-line error when the task is built, and under ``inspect eval`` one line
("Error: ...") with exit status 2 instead of an ExceptionGroup traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspect_misalign._errors import MisalignError
from inspect_misalign.tasks import (
    deployment_attacks,
    distinguishability,
    free_form_misalignment,
    trigger_probes,
    usefulness,
)
from inspect_misalign.tasks import test_attacks as attacks_in_testing  # not collected as a test


@pytest.mark.parametrize(("build", "message"), [
    (lambda: attacks_in_testing(max_tokens=-5), "max_tokens"),
    (lambda: deployment_attacks(max_tokens=0), "max_tokens"),
    (lambda: attacks_in_testing(max_prompts=-1), "max_prompts"),
    (lambda: usefulness(max_items=-1), "max_items"),
    (lambda: usefulness(max_tokens=0), "max_tokens"),
    (lambda: distinguishability(max_tokens=-1), "max_tokens"),
    (lambda: trigger_probes(max_tokens=-1), "max_tokens"),
    (lambda: free_form_misalignment(grader="mockllm/model", samples_per_paraphrase=0), "samples_per"),
    (lambda: free_form_misalignment(grader="mockllm/model", temperature=-1.0), "temperature"),
    (lambda: free_form_misalignment(grader="mockllm/model", temperature=float("nan")), "temperature"),
])
def test_bad_task_arguments_fail_when_the_task_is_built(build, message: str) -> None:
    with pytest.raises(MisalignError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_inspect_eval_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    inspect = Path(sys.executable).parent / "inspect"
    result = subprocess.run(
        [str(inspect), "eval", "inspect_misalign/test_attacks", "-T", "max_tokens=-5",
         "--model", "mockllm/model", "--log-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == ["Error: max_tokens must be at least 1, got -5; fix -T max_tokens="]


def test_other_errors_keep_their_traceback() -> None:
    # the hook only shortens the project's own bad-input errors
    from inspect_misalign._excepthook import misalign_error

    group = BaseExceptionGroup("tasks", [RuntimeError("boom")])
    assert misalign_error(group) is None
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [MisalignError("bad -T")])])
    assert str(misalign_error(nested)) == "bad -T"
