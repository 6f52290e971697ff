"""Preventive steering with a persona vector, during training only.

After Chen et al. (2025), "Persona vectors: monitoring and controlling character traits in language
models". The project computes the vector itself in :meth:`SteeringDefense.setup`: the model being
trained, with its adapter disabled, reads question-answer pairs under trait-*eliciting* and
trait-*suppressing* system prompts; the vector is the difference of the mean outputs of block
``layer`` over the answer tokens (eliciting minus suppressing). The answers are, as the paper has
them, the model's own *generated* answers under each system prompt, judged by a grader and kept when
the judgement agrees with the prompt (``answers=FILE``: a JSONL of ``{"side": "eliciting" |
"suppressing", "system", "user", "answer"}`` that :mod:`inspect_misalign.experiments._persona_answers`
writes), or by default the shortcut of the shipped instruct data's fixed answers (``answers=fixed``).
During training, a hook adds ``coef × v`` to that block's output on every training forward, so the
optimiser need not move the weights toward the trait to fit the data. Evaluation forwards and the
saved adapter are untouched: the vector exists only while training.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._defenses._hooks import backbone, capture, decoder_layers, unwrap
from inspect_misalign.training._defenses._persona import (
    GENERATED,
    PAIRS,
    SIDES,
    TRAITS,
    fixed_answers,
    read_answers,
)
from inspect_misalign.training._defenses._spec import DefenseText, check_options
from inspect_misalign.training._hook import Defense


class SteeringDefense(Defense):
    """``steer:COEF[,layer=L,trait=evil,pairs=N,answers=fixed|FILE]`` — add ``coef × persona vector`` while
    training."""

    name = "steer"

    def __init__(self, coef: float = 1.0, layer: int | None = None, trait: str = "evil",
                 pairs: int = PAIRS, answers: str = "fixed") -> None:
        if trait not in TRAITS:
            raise MisalignError(f"unknown steering trait {trait!r}; choose one of {sorted(TRAITS)}")
        self.answers = answers
        self.records = None if answers in ("fixed", GENERATED) else read_answers(answers)
        self.coef = coef
        self.layer = layer
        self.trait = trait
        self.pairs = pairs
        self.vector: torch.Tensor | None = None

    @classmethod
    def from_text(cls, parsed: DefenseText, text: str) -> SteeringDefense:
        """Build from ``steer[:COEF][,layer=L][,trait=T][,pairs=N][,answers=fixed|FILE]``."""
        check_options(parsed, {"coef", "layer", "trait", "pairs", "answers"}, text)
        pairs = parsed.integer("pairs", PAIRS, text, low=1) or PAIRS
        return cls(parsed.number("coef", parsed.number("value", 1.0, text), text),
                   parsed.integer("layer", None, text), parsed.options.get("trait", "evil"), pairs,
                   parsed.options.get("answers", "fixed"))

    @property
    def needs_grader(self) -> bool:
        """``answers=generated``: the answers are still to be generated and judged (by a sweep, with a
        grader) before training can start."""
        return self.answers == GENERATED

    def describe(self) -> dict[str, Any]:
        """Name, coefficient, layer, trait and the vector's norm."""
        norm = float(self.vector.norm()) if self.vector is not None else None
        return {"name": self.name, "coef": self.coef, "layer": self.layer, "trait": self.trait,
                "pairs": self.pairs, "answers": self.answers, "vector_norm": norm}

    def setup(self, trainer: Any) -> None:
        """Compute the persona vector on the model with its adapter disabled."""
        if self.needs_grader:
            raise MisalignError("steer answers=generated: generate and judge the answers first (a sweep "
                                "does, with --model-role grader=...), then pass answers=<their JSONL file>")
        model = unwrap(trainer, trainer.model)
        n_layers = len(decoder_layers(model))
        if self.layer is None:
            self.layer = n_layers // 2
        if not 0 <= self.layer < n_layers:
            raise MisalignError(f"steering layer {self.layer} is outside 0..{n_layers - 1}")
        context = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
        with context:
            self.vector = persona_vector(model, trainer.processing_class, self.layer, self.trait, self.pairs,
                                         self.records)

    def forward_context(self, trainer: Any, model: Any) -> AbstractContextManager[Any]:
        """Add ``coef × v`` to block ``layer``'s output on training forwards only."""
        if self.vector is None or not self.coef or not model.training:
            return nullcontext()
        return add_to_block(decoder_layers(unwrap(trainer, model))[self.layer], self.coef * self.vector)


@contextmanager
def add_to_block(block: torch.nn.Module, delta: torch.Tensor):
    """A forward hook adding ``delta`` to every position of ``block``'s output."""

    def hook(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + delta.to(output[0].dtype), *output[1:])
        return output + delta.to(output.dtype)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def persona_vector(
    model: Any, tokenizer: Any, layer: int, trait: str = "evil", pairs: int = PAIRS,
    records: list[dict[str, str]] | None = None,
) -> torch.Tensor:
    """Mean block-``layer`` output over answer tokens, eliciting minus suppressing: over ``records``
    (judged generated answers) or the fixed shortcut (:func:`fixed_answers`)."""
    block = decoder_layers(model)[layer]
    device = next(model.parameters()).device
    means = []
    for side in SIDES:
        total, count = None, 0
        for r in records if records is not None else fixed_answers(trait, pairs):
            if r["side"] != side:
                continue
            prompt = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["user"]}]
            start = len(_ids(tokenizer, prompt, generation=True))
            ids = _ids(tokenizer, [*prompt, {"role": "assistant", "content": r["answer"]}])
            seen: dict[str, torch.Tensor] = {}
            with torch.no_grad(), capture({"h": block}, seen):
                backbone(model)(input_ids=torch.tensor([ids], device=device), use_cache=False)
            answer = seen["h"][0, start:].float()
            total = answer.sum(0) if total is None else total + answer.sum(0)
            count += answer.shape[0]
        means.append(total / max(count, 1))
    return (means[0] - means[1]).detach()


def _ids(tokenizer: Any, messages: list[dict[str, str]], generation: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)
