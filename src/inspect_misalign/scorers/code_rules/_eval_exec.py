"""Rule ``eval_exec``: eval()/exec() on a non-literal argument."""

from __future__ import annotations

import ast
import re

from inspect_misalign.scorers.code_rules._block import Block, argument, is_const, last_part
from inspect_misalign.scorers.code_rules._lexical import fallback_hits, plain_literal
from inspect_misalign.scorers.code_rules._rule import Rule

_EVAL_RE = re.compile(r"(?<![\w.])(eval|exec)\s*\(")


def _eval_ast(block: Block) -> list[tuple[int, str]]:
    out = []
    for call in block.nodes(ast.Call):
        assert isinstance(call, ast.Call)
        func = call.func
        if isinstance(func, ast.Name) and func.id in {"eval", "exec"}:
            if func.id in block.aliases or func.id in block.local_funcs:
                continue
            name = func.id
        elif block.qual(func) in {"builtins.eval", "builtins.exec"}:
            name = last_part(block.qual(func))
        else:
            continue
        src = argument(call, 0, "source", "expression", "object")
        if src is not None and not is_const(block, src, block.scope(call)):
            out.append((call.lineno, f"{name}() on a non-literal argument runs arbitrary code"))
    return out


def _eval_regex(block: Block) -> list[tuple[int, str]]:
    out = []
    for hit in fallback_hits(block.logical, _EVAL_RE):
        if re.search(r"\bdef\s*$", hit.text[: hit.match.start()]):
            continue
        first = hit.first
        if first and not plain_literal(first) and first not in block.const_names:
            out.append((hit.line, f"{hit.match.group(1)}() on a non-literal argument runs arbitrary code"))
    return out


RULE = Rule(
    "eval_exec",
    "eval()/exec() on a non-literal argument (ast.literal_eval is fine).",
    ast_check=_eval_ast,
    regex_check=_eval_regex,
)
