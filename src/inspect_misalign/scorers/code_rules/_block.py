"""The AST view of a code block that every rule shares: a (partial) parse, scopes, bindings, aliases.

Where a block parses, rules walk its AST; where it does not, :func:`parse_prefix` keeps the longest
parseable prefix. Names are resolved through simple assignments in their scope (falling back to the
module), import aliases are followed, and :data:`UNKNOWN` stands for a value that cannot be seen.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from inspect_misalign.scorers.code_rules._lexical import ASSIGN_RE, logical_lines, plain_literal

UNKNOWN = ast.Constant(value=...)  # sentinel: a name bound to something we cannot see
ScopeNode = ast.AST


@dataclass
class Block:
    """One code block with its lines, (partial) AST and lookup tables."""

    code: str
    lines: list[str]
    tree: ast.Module | None
    parsed_all: bool
    truncated: bool = False
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    binds: dict[ScopeNode, dict[str, list[ast.expr]]] = field(default_factory=dict)
    local_funcs: set[str] = field(default_factory=set)
    all_nodes: list[ast.AST] = field(default_factory=list)
    _logical: list[tuple[int, str]] | None = None
    _const_names: set[str] | None = None

    @property
    def fallback(self) -> bool:
        """Run the regex fallback: the block does not parse, or its fence was never closed."""
        return self.truncated or not self.parsed_all

    @property
    def logical(self) -> list[tuple[int, str]]:
        """Comment-stripped logical lines of the whole block (for the regex fallback)."""
        if self._logical is None:
            self._logical = logical_lines(self.code)
        return self._logical

    @property
    def const_names(self) -> set[str]:
        """Regex view: names whose every assignment in the block is a plain string literal."""
        if self._const_names is None:
            consts: set[str] = set()
            other: set[str] = set()
            for _, text in self.logical:
                m = ASSIGN_RE.match(text)
                if m:
                    plain = m.group("op") == "=" and plain_literal(m.group("rhs"))
                    (consts if plain else other).add(m.group("name"))
            self._const_names = consts - other
        return self._const_names

    def nodes(self, *types: type[ast.AST]) -> Iterator[ast.AST]:
        """All AST nodes of the given types (nothing when there is no tree)."""
        for node in self.all_nodes:
            if isinstance(node, types):
                yield node

    def scope(self, node: ast.AST) -> ScopeNode:
        """The enclosing function (or the module) of a node."""
        cur = self.parents.get(node)
        while cur is not None:
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return cur
            cur = self.parents.get(cur)
        assert self.tree is not None
        return self.tree

    def values(self, name: str, scope: ScopeNode) -> list[ast.expr]:
        """Expressions bound to ``name`` in ``scope`` (falling back to module scope)."""
        local = self.binds.get(scope, {})
        if name in local:
            return local[name]
        assert self.tree is not None
        return self.binds.get(self.tree, {}).get(name, [])

    def qual(self, node: ast.AST) -> str:
        """Dotted name of an expression with import aliases resolved, e.g. ``subprocess.run``."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            return f"{self.qual(node.value)}.{node.attr}"
        if isinstance(node, ast.Call):
            return f"{self.qual(node.func)}()"
        if isinstance(node, ast.Subscript):
            return f"{self.qual(node.value)}[]"
        return "?"


def parse_prefix(code: str) -> tuple[ast.Module | None, bool]:
    """Parse the whole block, or else its longest parseable prefix (cut before the error)."""
    try:
        return ast.parse(code), True
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        lines = code.splitlines()
        last = min(len(lines), (getattr(err, "lineno", None) or len(lines)))
        for k in range(last, max(0, last - 60), -1):
            try:
                return ast.parse("\n".join(lines[:k])), False
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
        return None, False


def _bind(block: Block, scope: ScopeNode, target: ast.AST, value: ast.expr) -> None:
    table = block.binds.setdefault(scope, {})
    if isinstance(target, ast.Name):
        table.setdefault(target.id, []).append(value)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _bind(block, scope, elt, UNKNOWN)
    elif isinstance(target, ast.Starred):
        _bind(block, scope, target.value, UNKNOWN)


def make_block(code: str, truncated: bool = False) -> Block:
    """Parse a block (or its longest parseable prefix) and index its scopes, bindings and aliases."""
    tree, parsed_all = parse_prefix(code)
    block = Block(code, code.splitlines(), tree, parsed_all, truncated)
    if tree is None:
        return block
    block.all_nodes = list(ast.walk(tree))
    for parent in block.all_nodes:
        for child in ast.iter_child_nodes(parent):
            block.parents[child] = parent
    for node in block.all_nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    block.aliases[a.asname] = a.name
                else:
                    block.aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                block.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        scope = block.scope(node) if node is not tree else tree
        if isinstance(node, ast.Assign):
            for t in node.targets:
                _bind(block, scope, t, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            _bind(block, scope, node.target, node.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            synth = ast.BinOp(
                left=ast.Name(id=node.target.id, ctx=ast.Load()), op=node.op, right=node.value
            )
            ast.copy_location(synth, node)
            _bind(block, scope, node.target, synth)
        elif isinstance(node, ast.NamedExpr):
            _bind(block, scope, node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            _bind(block, scope, node.target, UNKNOWN)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            _bind(block, scope, node.optional_vars, UNKNOWN)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                block.local_funcs.add(node.name)
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    block.binds.setdefault(node, {}).setdefault(arg.arg, []).append(UNKNOWN)
    return block


def kwarg(call: ast.Call, *names: str) -> ast.expr | None:
    """The value of the first keyword argument of ``call`` named in ``names``."""
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return None


def argument(call: ast.Call, index: int, *names: str) -> ast.expr | None:
    """Positional argument ``index`` of ``call``, else its keyword under one of ``names``."""
    if len(call.args) > index and not isinstance(call.args[index], ast.Starred):
        return call.args[index]
    return kwarg(call, *names)


def last_part(name: str) -> str:
    """The last component of a dotted name."""
    return name.rsplit(".", 1)[-1]


def is_const(
    block: Block, node: ast.AST, scope: ScopeNode, seen: frozenset[str] = frozenset()
) -> bool:
    """True when an expression is (or resolves through simple assignments to) a constant."""
    if node is UNKNOWN:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant)
            or (isinstance(v, ast.FormattedValue) and is_const(block, v.value, scope, seen))
            for v in node.values
        )
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(is_const(block, e, scope, seen) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return is_const(block, node.left, scope, seen) and is_const(
            block, node.right, scope, seen
        )
    if isinstance(node, ast.Name):
        if node.id in seen:
            return True  # self-reference (x += "..."): the other bindings decide
        vals = block.values(node.id, scope)
        inner = seen | {node.id}
        return bool(vals) and all(is_const(block, v, scope, inner) for v in vals)
    return False


def const_value(block: Block, node: ast.AST | None, scope: ScopeNode) -> object:
    """The Python value of a constant expression (through one level of names), else Ellipsis."""
    if node is None:
        return ...
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        vals = block.values(node.id, scope)
        if len(vals) == 1 and isinstance(vals[0], ast.Constant) and vals[0] is not UNKNOWN:
            return vals[0].value
    return ...


def str_text(block: Block, node: ast.AST, scope: ScopeNode, depth: int = 0) -> str:
    """Approximate text of a string expression, with ``{}`` standing for dynamic parts."""
    if depth > 8:
        return "{}"
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            return node.value
        if isinstance(node.value, bytes):
            return node.value.decode("utf-8", "replace")
        return "{}"
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
            for v in node.values
        )
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add):
            return str_text(block, node.left, scope, depth + 1) + str_text(
                block, node.right, scope, depth + 1
            )
        if isinstance(node.op, ast.Mod):
            return str_text(block, node.left, scope, depth + 1)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return str_text(block, node.func.value, scope, depth + 1)
    if isinstance(node, ast.Name):
        vals = [v for v in block.values(node.id, scope) if v is not UNKNOWN]
        if vals:
            return str_text(block, vals[0], scope, depth + 1)
    return "{}"


def walk_no_barrier(node: ast.AST, barrier: Callable[[ast.AST], bool]) -> Iterator[ast.AST]:
    """Walk the subtree of ``node`` without descending below nodes where ``barrier`` is true."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        if barrier(cur):
            continue
        stack.extend(ast.iter_child_nodes(cur))
