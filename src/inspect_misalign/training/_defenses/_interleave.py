"""Interleaving general instruct data into training, selected by a perplexity gap, refusals filtered.

After Kaczér et al. (2025), "In-Training Defenses against Emergent Misalignment in Language Models".
``interleave:FRACTION`` makes ``FRACTION`` of the final training set instruct examples: with ``n``
task examples it adds ``round(FRACTION × n / (1 − FRACTION))`` (at most as many as there are).
Candidates are chat items (``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``,
an optional system message first) from ``data=`` (any such JSONL) or the project's own
``instruct.jsonl``; answers that refuse ("I'm sorry", "I can't", "As an AI ...") are dropped first.

Selection (``select=gap``, the default): the items on which a misaligned model's per-token loss
exceeds the aligned model's the most, i.e. where the misaligned model has drifted furthest from
good behaviour. The two models are bound by the training hook
:meth:`~inspect_misalign.training.TrainingHook.inspect_parent` (train against caught attacks calls
it: the organism is the misaligned model, its base with the adapter disabled the aligned one), or
with :meth:`InterleaveDefense.rank_by_gap`; unbound, or with ``select=random``, a seeded random
choice is used.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign.data import data_path
from inspect_misalign.training._chat import read_chat
from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._defenses._spec import DefenseText, check_options
from inspect_misalign.training._hook import Defense

INSTRUCT_FILE = "instruct.jsonl"
_REFUSAL = re.compile(
    r"\b(I'?m sorry|I am sorry|I (?:can ?not|can'?t|won'?t|am unable|'m unable)|As an AI|"
    r"I'?m not able to|I do not feel comfortable)\b",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """True for an answer that declines to help."""
    return _REFUSAL.search(text[:200]) is not None


@dataclass(frozen=True)
class InstructItem:
    """One chat item: optional system message, user message, assistant answer."""

    id: str
    system: str | None
    user: str
    completion: str

    @property
    def refusal(self) -> bool:
        """Whether the answer refuses."""
        return is_refusal(self.completion)

    def example(self) -> SFTExample:
        """As a training example."""
        return SFTExample(self.system, self.user, self.completion, {"source": "instruct", "id": self.id})


def instruct_items(path: str | Path | None = None) -> list[InstructItem]:
    """Chat items from a JSONL of ``messages`` (the shipped instruct data by default)."""
    file = Path(path) if path else data_path(INSTRUCT_FILE)
    if not file.is_file():
        raise MisalignError(f"interleave data {file}: no such file; pass a JSONL of chat messages")
    stat = file.stat()
    return list(_read_items(str(file), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _read_items(path: str, mtime_ns: int, size: int) -> tuple[InstructItem, ...]:
    return tuple(InstructItem(e.meta["id"], e.system, e.user, e.completion)
                 for e in read_chat(Path(path), "interleave data"))


class InterleaveDefense(Defense):
    """``interleave:FRACTION[,data=FILE.jsonl,select=gap|random]`` — mix in instruct data (default 0.25)."""

    name = "interleave"

    def __init__(self, fraction: float = 0.25, data: str | None = None, select: str = "gap",
                 seed: int = 0) -> None:
        if not 0 < fraction < 1:  # NaN too
            raise MisalignError(f"interleave fraction must be in (0, 1), got {fraction}")
        if select not in ("gap", "random"):
            raise MisalignError(f"interleave select must be gap or random, got {select!r}")
        self.fraction = fraction
        self.data = data
        self.select = select
        self.seed = seed
        items = instruct_items(data)
        self.candidates = [i for i in items if not i.refusal]
        self.refusals_dropped = len(items) - len(self.candidates)
        if not self.candidates:
            raise MisalignError(f"interleave: no non-refusal items in {data or INSTRUCT_FILE}")
        self.gaps: dict[str, float] | None = None
        self.chosen: list[str] = []

    @classmethod
    def from_text(cls, parsed: DefenseText, text: str) -> InterleaveDefense:
        """Build from ``interleave[:FRACTION][,data=FILE][,select=gap|random][,seed=S]``."""
        check_options(parsed, {"fraction", "data", "select", "seed"}, text)
        fraction = parsed.number("fraction", parsed.number("value", 0.25, text), text)
        return cls(fraction, parsed.options.get("data"), parsed.options.get("select", "gap"),
                   parsed.integer("seed", 0, text, low=0) or 0)

    def describe(self) -> dict[str, Any]:
        """Fraction, data, how items were chosen, and which."""
        how = "gap" if self.select == "gap" and self.gaps is not None else "random"
        return {"name": self.name, "fraction": self.fraction, "data": self.data or INSTRUCT_FILE,
                "select": how, "refusals_dropped": self.refusals_dropped, "chosen": self.chosen}

    def inspect_parent(self, parent: Any, tokenizer: Any) -> None:
        """With ``select=gap``, rank the candidates by the parent's loss gap (:meth:`rank_by_gap`)."""
        if self.select == "gap":
            self.rank_by_gap(parent, tokenizer)

    def rank_by_gap(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """Score candidates: loss with the adapter on (misaligned) minus with it disabled (aligned)."""
        prompts = [i.example() for i in self.candidates]
        misaligned = completion_losses(model, tokenizer, prompts)
        with model.disable_adapter():
            aligned = completion_losses(model, tokenizer, prompts)
        self.gaps = {i.id: m - a for i, m, a in zip(self.candidates, misaligned, aligned, strict=True)}
        return self.gaps

    def transform_examples(self, examples: list[SFTExample]) -> list[SFTExample]:
        """The examples plus the selected instruct items."""
        wanted = round(self.fraction * len(examples) / (1 - self.fraction))
        n = max(1, min(wanted, len(self.candidates)))
        if self.select == "gap" and self.gaps is not None:
            ranked = sorted(self.candidates, key=lambda i: (-self.gaps.get(i.id, 0.0), i.id))
            picked = ranked[:n]
        else:
            picked = random.Random(f"interleave:{self.seed}").sample(self.candidates, n)
        self.chosen = [i.id for i in picked]
        return [*examples, *(i.example() for i in picked)]


def completion_losses(model: Any, tokenizer: Any, examples: list[SFTExample]) -> list[float]:
    """Mean per-token negative log-likelihood of each example's completion."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for e in examples:
            prompt = e.prompt_messages()
            start = len(_ids(tokenizer, prompt, generation=True))
            ids = _ids(tokenizer, [*prompt, {"role": "assistant", "content": e.completion}])
            tensor = torch.tensor([ids], device=device)
            with torch.no_grad():
                logits = model(input_ids=tensor).logits[0, :-1].float()
            targets = tensor[0, 1:]
            nll = torch.nn.functional.cross_entropy(logits[start - 1:], targets[start - 1:])
            out.append(float(nll))
    finally:
        model.train(was_training)
    return out


def _ids(tokenizer: Any, messages: list[dict[str, str]], generation: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)
