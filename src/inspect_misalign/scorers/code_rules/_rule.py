"""What a rule is: an AST check, and a looser regex check run where the block needs the fallback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from inspect_misalign.scorers.code_rules._block import Block

Hits = list[tuple[int, str]]
"""(1-based line in the block, message) pairs."""


def _always(block: Block) -> bool:
    return True


def _unchanged(hits: Hits) -> Hits:
    return hits


@dataclass(frozen=True)
class Rule:
    """A named insecure pattern.

    ``check`` runs ``ast_check``, then ``regex_check`` when the block does not parse or its fence
    was never closed (:attr:`Block.fallback`); ``applies`` can rule a whole block out first, and
    ``finish`` post-processes the combined hits.
    """

    name: str
    description: str
    ast_check: Callable[[Block], Hits]
    regex_check: Callable[[Block], Hits] | None = None
    applies: Callable[[Block], bool] = _always
    finish: Callable[[Hits], Hits] = _unchanged

    def check(self, block: Block) -> Hits:
        """The (line, message) hits of this rule in one block."""
        if not self.applies(block):
            return []
        hits = self.ast_check(block)
        if block.fallback and self.regex_check is not None:
            hits = hits + self.regex_check(block)
        return self.finish(hits)
