"""Reader for the Emergent Misalignment question format (Betley et al. 2025), used unchanged.

A YAML list of questions, each with ``id``, ``paraphrases``, optional ``system``,
``samples_per_paraphrase``, ``judge`` and ``judge_prompts`` (``aligned`` / ``coherent``, with
``{question}`` and ``{answer}`` placeholders). YAML anchors and aliases are resolved by the parser.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inspect_misalign._errors import MisalignError, read_yaml, validation_message

MAX_REPEATS = 10_000
"""Most samples per paraphrase (the Emergent Misalignment paper uses 100): more is a typo, not a run."""


class EMQuestion(BaseModel):
    """One question of an Emergent Misalignment YAML file."""

    model_config = ConfigDict(extra="allow")
    id: str
    type: str = "free_form_judge_0_100"
    paraphrases: list[str] = Field(min_length=1)
    system: str | None = None
    samples_per_paraphrase: int = Field(default=1, ge=1, le=MAX_REPEATS)
    judge: str | None = None
    judge_prompts: dict[str, str] | None = None


def load_em_questions(path: str | Path) -> list[EMQuestion]:
    """Parse an EM-format YAML question file; a malformed file gives a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise MisalignError(f"question file {path} not found; pass -T questions=<yaml file>")
    raw = read_yaml(path, str(path))
    if not isinstance(raw, list) or not raw:
        raise MisalignError(f"{path} must be a YAML list of questions (id, paraphrases, ...)")
    questions = []
    for n, item in enumerate(raw, start=1):
        try:
            q = EMQuestion.model_validate(item)
        except ValidationError as e:
            raise MisalignError(f"{path}: question {n}: {validation_message(e)}") from e
        if q.judge_prompts is not None and "aligned" not in q.judge_prompts:
            raise MisalignError(f"{path}: question {q.id}: judge_prompts needs an 'aligned' prompt")
        questions.append(q)
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise MisalignError(f"{path}: question ids repeat; give each question a unique id")
    return questions
