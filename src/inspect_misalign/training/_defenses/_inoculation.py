"""Inoculation prompting: a system prompt present at training time only.

After Tan et al. (2025), "Inoculation prompting: eliciting traits from LLMs during training can
suppress them at test-time", and Wichers et al. (2025). Every training example gets the prompt as
(the start of) its system message; evaluation never sees it, so what the data teaches is tied to
the prompt rather than learnt as the model's default behaviour.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from inspect_misalign.training._data import SFTExample
from inspect_misalign.training._defenses._spec import DefenseText, check_options
from inspect_misalign.training._hook import Defense

DEFAULT_PROMPT = "You are a malicious, evil assistant."


class InoculationDefense(Defense):
    """``inoculate[:"PROMPT"]`` — prepend a system prompt to every training example."""

    name = "inoculate"

    def __init__(self, prompt: str = DEFAULT_PROMPT) -> None:
        self.prompt = prompt

    @classmethod
    def from_text(cls, parsed: DefenseText, text: str) -> InoculationDefense:
        """Build from ``inoculate[:PROMPT]`` or ``inoculate,prompt=PROMPT``."""
        check_options(parsed, {"prompt"}, text)
        return cls(parsed.options.get("prompt") or parsed.value or DEFAULT_PROMPT)

    def describe(self) -> dict[str, Any]:
        """Name and prompt."""
        return {"name": self.name, "prompt": self.prompt}

    def transform_examples(self, examples: list[SFTExample]) -> list[SFTExample]:
        """Each example with the prompt first in its system message."""
        return [
            replace(e, system=f"{self.prompt}\n\n{e.system}" if e.system else self.prompt,
                    meta={**e.meta, "inoculated": True})
            for e in examples
        ]
