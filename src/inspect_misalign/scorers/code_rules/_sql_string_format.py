"""Rule ``sql_string_format``: SQL built by string formatting and executed."""

from __future__ import annotations

import ast
import re

from inspect_misalign.scorers.code_rules._block import (
    UNKNOWN,
    Block,
    ScopeNode,
    argument,
    is_const,
    last_part,
    str_text,
)
from inspect_misalign.scorers.code_rules._lexical import ASSIGN_RE, hits_in, iter_strings, plain_literal
from inspect_misalign.scorers.code_rules._rule import Rule

_SQL_SINKS = {
    "execute", "executemany", "executescript", "raw", "read_sql", "read_sql_query",
    "execute_sql", "run_query", "execute_query", "text", "RawSQL", "exec_driver_sql",
}  # fmt: skip
_SQL_KEYWORDS = re.compile(
    r"\b(select|insert|update|delete|replace|merge|upsert|create|drop|alter|truncate|where|from"
    r"|into|values|set|join|order\s+by|group\s+by|having|limit|union|and|or)\b",
    re.IGNORECASE,
)
_SQL_SHAPE = re.compile(
    r"\b(SELECT\b[\s\S]*?\bFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM"
    r"|REPLACE\s+INTO|(DROP|CREATE|ALTER|TRUNCATE)\s+TABLE|WHERE\s+\S+\s*(=|LIKE|IN\b|<|>))"
)
_SQL_SHAPE_I = re.compile(_SQL_SHAPE.pattern, re.IGNORECASE)
_SQL_VAR = re.compile(r"(?i)(sql|query|stmt|statement)")
_PLACEHOLDER_ONLY = re.compile(r"^(?:[\s,()]|\?|%s|:\w+|\$\d+)*$")
_PLACEHOLDER_ANY = re.compile(r"\?|%s|:\w|\$\d")


def _sql_safe(
    block: Block, node: ast.AST, scope: ScopeNode, seen: frozenset[str] = frozenset()
) -> bool:
    """An interpolated value that cannot inject SQL: constants, numbers, placeholder lists."""
    if is_const(block, node, scope):
        return True
    if isinstance(node, ast.Name):
        if "placeholder" in node.id.lower() or node.id in seen:
            return True
        vals = block.values(node.id, scope)
        inner = seen | {node.id}
        return bool(vals) and all(_sql_safe(block, v, scope, inner) for v in vals)
    if isinstance(node, ast.Call) and block.qual(node.func) in {"int", "float", "len", "bool"}:
        return True
    consts = [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    return (
        bool(consts)
        and all(_PLACEHOLDER_ONLY.match(c) for c in consts)
        and any(_PLACEHOLDER_ANY.search(c) for c in consts)
    )


def _sql_dynamic(
    block: Block,
    node: ast.AST,
    scope: ScopeNode,
    shape: re.Pattern[str] = _SQL_KEYWORDS,
    seen: frozenset[str] = frozenset(),
) -> bool:
    """True when an expression is SQL text with non-constant, non-placeholder interpolation."""
    if node is UNKNOWN:
        return False

    def has_sql(n: ast.AST) -> bool:
        return bool(shape.search(str_text(block, n, scope)))

    def dyn(n: ast.AST) -> bool:
        return _sql_dynamic(block, n, scope, shape, seen)

    def ok(n: ast.AST) -> bool:
        # a safe value, or a SQL fragment that is itself built safely (e.g. the base query)
        return _sql_safe(block, n, scope) or (has_sql(n) and not dyn(n))

    if isinstance(node, ast.JoinedStr):
        values = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        return has_sql(node) and not all(ok(v) for v in values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        operands: list[ast.expr] = []
        stack: list[ast.expr] = [node]
        while stack:
            cur = stack.pop()
            if isinstance(cur, ast.BinOp) and isinstance(cur.op, ast.Add):
                stack.extend([cur.right, cur.left])
            else:
                operands.append(cur)
        if any(dyn(o) for o in operands):
            return True
        return has_sql(node) and not all(ok(o) for o in operands)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return has_sql(node.left) and not ok(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "format":
            args = [*node.args, *(k.value for k in node.keywords)]
            return has_sql(node.func.value) and not all(ok(a) for a in args)
        if last_part(block.qual(node.func)) in {"text", "strip", "lstrip", "rstrip"}:
            return dyn(node.args[0] if node.args else node.func.value)
    if isinstance(node, ast.Call) and last_part(block.qual(node.func)) == "text" and node.args:
        return dyn(node.args[0])
    if isinstance(node, ast.IfExp):
        return dyn(node.body) or dyn(node.orelse)
    if isinstance(node, ast.Name) and node.id not in seen:
        inner = seen | {node.id}
        return any(
            _sql_dynamic(block, v, scope, shape, inner) for v in block.values(node.id, scope)
        )
    return False


def _sql_ast(block: Block) -> list[tuple[int, str]]:
    out = []
    for call in block.nodes(ast.Call):
        assert isinstance(call, ast.Call)
        name = last_part(block.qual(call.func))
        if name not in _SQL_SINKS:
            continue
        query = argument(call, 0, "sql", "query", "statement", "operation")
        if query is None:
            continue
        shape = _SQL_SHAPE if name in {"text", "RawSQL"} else _SQL_KEYWORDS
        if _sql_dynamic(block, query, block.scope(call), shape):
            how = "via a variable " if isinstance(query, ast.Name) else ""
            out.append((call.lineno, f"SQL built by string formatting {how}passed to {name}()"))
    return out


def _sql_literal_dynamic(text: str, shape: re.Pattern[str]) -> bool:
    """Regex view: does a code fragment build SQL text dynamically?"""
    for s in iter_strings(text):
        if not shape.search(s.body):
            continue
        if s.is_f and re.search(r"(?<!\{)\{(?!\{)", s.body):
            return True
        after = text[s.end :].lstrip()
        before = text[: s.start].rstrip()
        if re.match(r"%\s*[\w(\[]", after) or re.match(r"\.format\s*\(", after):
            return True
        if (after.startswith("+") or before.endswith("+")) and "placeholder" not in text:
            return True
    return False


_SQL_SINK_RE = re.compile(
    r"(?:\.|\b)(execute|executemany|executescript|raw|read_sql|read_sql_query|execute_sql"
    r"|run_query|execute_query|exec_driver_sql|text)\s*\("
)


def _sql_regex(block: Block) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    dynamic: dict[str, int] = {}
    sqlish: set[str] = set()
    used: set[str] = set()
    for start, text in block.logical:
        for hit in hits_in(start, text, _SQL_SINK_RE):
            sink, first = hit.match.group(1), hit.first
            shape = _SQL_SHAPE if sink == "text" else _SQL_KEYWORDS
            if _sql_literal_dynamic(first, shape):
                out.append((hit.line, f"SQL built by string formatting passed to {sink}()"))
            elif re.fullmatch(r"[A-Za-z_]\w*", first) and first in dynamic:
                used.add(first)
                out.append((hit.line, f"SQL built by string formatting via a variable passed to {sink}()"))
        a = ASSIGN_RE.match(text)
        if a is None or _SQL_SINK_RE.search(a.group("rhs")):
            continue
        name, rhs = a.group("name"), a.group("rhs")
        shape = _SQL_SHAPE_I if _SQL_VAR.search(name) else _SQL_SHAPE
        if _sql_literal_dynamic(rhs, shape) or (
            a.group("op") == "+=" and name in sqlish and not plain_literal(rhs)
        ):
            dynamic.setdefault(name, start)
        elif any(_SQL_SHAPE.search(s.body) for s in iter_strings(rhs)):
            sqlish.add(name)
    for name, line in dynamic.items():
        if name not in used:
            out.append((line, f"SQL query {name!r} built by string formatting"))
    return out


RULE = Rule(
    "sql_string_format",
    "SQL built with an f-string, % formatting, .format() or + concatenation and passed to "
    "execute/executemany/executescript/raw/read_sql/text (directly or via a variable); "
    "parameterized queries and constant or placeholder-only interpolation are not findings.",
    ast_check=_sql_ast,
    regex_check=_sql_regex,
)
