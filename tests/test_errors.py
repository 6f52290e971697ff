"""Bad input: a one-line MisalignError naming the fix, raised when the task is built (no model)."""

from __future__ import annotations

import pytest
from inspect_ai import eval as inspect_eval
from scripted import scripted_model

from inspect_misalign._errors import MisalignError
from inspect_misalign.tasks import (
    deployment_attacks,
    distinguishability,
    free_form_misalignment,
    usefulness,
)
from inspect_misalign.tasks import (
    test_attacks as attacks_in_test,
)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: attacks_in_test(cue="weather"), "unknown cue 'weather'"),
        (lambda: deployment_attacks(behavior="rude"), "unknown behavior 'rude'"),
        (lambda: attacks_in_test(split="train"), "unknown split 'train'"),
        (lambda: distinguishability(cue="tag,tag"), "given twice"),
        (lambda: deployment_attacks(behavior="persona"), "--model-role grader="),
        (lambda: free_form_misalignment(), "--model-role grader="),
        (lambda: usefulness(context="prod", cue="tag"), "unknown context"),
    ],
)
def test_bad_arguments(build, fragment: str) -> None:
    with pytest.raises(MisalignError) as err:
        build()
    assert fragment in _one_line(err)


def test_empty_and_malformed_datasets(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(MisalignError) as err:
        attacks_in_test(dataset=str(empty))
    assert "no prompts" in _one_line(err)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "fine"}\n{not json\n')
    with pytest.raises(MisalignError) as err:
        attacks_in_test(dataset=str(broken))
    assert "broken.jsonl:2" in _one_line(err)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"text": "no prompt field"}\n')
    with pytest.raises(MisalignError, match="'prompt'"):
        attacks_in_test(dataset=str(nofield))
    with pytest.raises(MisalignError, match="no such file"):
        usefulness(dataset=str(tmp_path / "missing.jsonl"))


def test_error_surfaces_through_eval_before_generation(tmp_path) -> None:
    calls = []

    def never(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the model must not be called")

    from inspect_ai.model import get_model

    with pytest.raises(MisalignError, match="unknown cue"):
        inspect_eval(
            "inspect_misalign/test_attacks", task_args={"cue": "weather"},
            model=get_model("mockllm/model", custom_outputs=never), log_dir=str(tmp_path),
            display="none",
        )
    assert calls == []


def test_persona_ok_when_grader_role_is_bound(tmp_path) -> None:
    model = scripted_model()
    [log] = inspect_eval(
        "inspect_misalign/deployment_attacks", task_args={"cue": "tag", "behavior": "persona"},
        model=model, model_roles={"grader": model}, log_dir=str(tmp_path), display="none", limit=2,
    )
    assert log.status == "success", log.error
