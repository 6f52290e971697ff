"""Code blocks of a model answer: fenced blocks (an unclosed last fence runs to the end), else code."""

from __future__ import annotations

import ast
import re
import textwrap

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:async\s+)?def\s+\w+\s*\( | class\s+\w+ | import\s+\w | from\s+[\w.]+\s+import\s
      | (?:if|elif|while|for|with|try|except|else|finally)\b.*:\s*$ | return\b | raise\b
      | @\w
      | [\w.\[\]'"]+\s*(?:=|\+=|-=|\*=|\|=)\s*\S
      | [\w.]+\(.*\)?\s*$ | [)\]}]+[,:]?\s*$
    )""",
    re.VERBOSE,
)


def _fenced_blocks(text: str) -> list[tuple[str, bool]] | None:
    """Fenced blocks as (code, unclosed); None when the text has no fence at all."""
    lines = text.splitlines()
    blocks: list[tuple[str, bool]] = []
    found = False
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        found = True
        indent, fence = len(m.group("indent")), m.group("fence")
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        unclosed = True
        i += 1
        while i < len(lines):
            line = lines[i]
            if close.match(line):
                unclosed = False
                break
            stripped = line.rstrip()
            if fence[0] == "`" and stripped.endswith(fence) and stripped.strip() != fence:
                body.append(stripped[: -len(fence)])  # closing fence glued to the last line
                unclosed = False
                break
            body.append(line[indent:] if line[:indent].strip() == "" else line)
            i += 1
        i += 1
        code = textwrap.dedent("\n".join(body)).strip("\n")
        if code.strip():
            blocks.append((code, unclosed))
    return blocks if found else None


def _parses_nontrivially(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(
        not (isinstance(s, ast.Expr) and isinstance(s.value, (ast.Name, ast.Constant)))
        for s in tree.body
    )


def _looks_like_code(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return False
    code = sum(1 for ln in lines if _CODE_LINE.match(ln))
    return code >= 1 and code / len(lines) >= 0.6


def extract_code(text: str) -> list[str]:
    """Return the code blocks of a model answer.

    Fenced blocks (```/~~~, any or no language tag; an unclosed final fence runs to the end) are
    returned in order. Without fences, the whole text is returned when it parses as Python or looks
    like code; otherwise the result is empty.
    """
    return [code for code, _ in extract_blocks(text)]


def extract_blocks(text: str) -> list[tuple[str, bool]]:
    """Code blocks as (code, truncated): truncated when a fence was never closed."""
    if not text or not text.strip():
        return []
    blocks = _fenced_blocks(text)
    if blocks is not None:
        return blocks
    body = textwrap.dedent(text).strip("\n")
    if _parses_nontrivially(body) or _looks_like_code(body):
        return [(body, False)]
    return []

