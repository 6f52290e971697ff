"""Lexical helpers for the regex fallback: string literals, logical lines, call arguments, matches.

The fallback runs on comment-stripped logical lines; sinks are matched on a copy whose string
literals are blanked out (same length), so a match offset maps back to the original text and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class StrLiteral:
    """A string literal in a code fragment, located by offsets (tolerates unterminated ones)."""

    start: int  # index of the prefix (or the quote when there is no prefix)
    end: int  # index just past the closing quote (or end of text when unterminated)
    prefix: str
    body: str
    terminated: bool

    @property
    def is_f(self) -> bool:
        return "f" in self.prefix.lower()


def iter_strings(text: str) -> Iterator[StrLiteral]:
    """Yield string literals of a code fragment (tolerates unterminated strings)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c not in "\"'":
            i += 1
            continue
        p = i
        while p > 0 and text[p - 1] in "rRbBuUfF" and i - p < 2:
            p -= 1
        if p > 0 and (text[p - 1].isalnum() or text[p - 1] == "_"):
            p = i  # part of an identifier, not a prefix
        quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else c
        j = i + len(quote)
        while j < n:
            if text[j] == "\\":
                j += 2
                continue
            if text.startswith(quote, j):
                break
            if len(quote) == 1 and text[j] == "\n":
                break
            j += 1
        terminated = text.startswith(quote, j)
        body = text[i + len(quote) : min(j, n)]
        end = j + len(quote) if terminated else min(j, n)
        yield StrLiteral(p, end, text[p:i], body, terminated)
        i = end


def logical_lines(src: str) -> list[tuple[int, str]]:
    """Split code into logical statements with comments removed: (1-based start line, text).

    Newlines inside a statement are kept so that offsets map back to lines.
    """
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = line = 1
    depth = 0
    quote: str | None = None
    i, n = 0, len(src)

    def emit() -> None:
        text = "".join(buf)
        if text.strip():
            out.append((start, text))

    while i < n:
        c = src[i]
        if quote is not None:
            if c == "\\" and i + 1 < n and src[i + 1] != "\n":
                buf.append(src[i : i + 2])
                i += 2
                continue
            if src.startswith(quote, i):
                buf.append(quote)
                i += len(quote)
                quote = None
                continue
            if not (c == "\n" and len(quote) == 1):
                line += c == "\n"
                buf.append(c)
                i += 1
                continue
            quote = None  # unterminated single-line string: the newline ends it
        if c == "#":
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "\"'":
            quote = src[i : i + 3] if src[i : i + 3] in ('"""', "'''") else c
            buf.append(quote)
            i += len(quote)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c == "\\" and src[i + 1 : i + 2] == "\n":
            buf.append("\n")
            line += 1
            i += 2
            continue
        elif c == "\n":
            line += 1
            if depth == 0:
                emit()
                buf = []
                start = line
                i += 1
                continue
        buf.append(c)
        i += 1
    emit()
    return out


def call_args(text: str, open_idx: int) -> str:
    """Text between the parenthesis at ``open_idx`` and its match (or the end if truncated)."""
    depth = 0
    strings = {s.start: s for s in iter_strings(text[open_idx:])}
    i = open_idx
    while i < len(text):
        s = strings.get(i - open_idx)
        if s is not None:
            i = open_idx + s.end
            continue
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i]
        i += 1
    return text[open_idx + 1 :]


def first_arg(args: str) -> str:
    """The first top-level argument of an argument list text."""
    depth = 0
    strings = {s.start: s for s in iter_strings(args)}
    i = 0
    while i < len(args):
        s = strings.get(i)
        if s is not None:
            i = s.end
            continue
        c = args[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            return args[:i].strip()
        i += 1
    return args.strip()


def plain_literal(expr: str) -> bool:
    """True when an expression text is a non-f string literal (or a list/tuple of them)."""
    expr = expr.strip()
    if not expr:
        return False
    if expr[0] in "[(" and expr[-1:] in "])":
        inner = expr[1:-1]
        parts = [p for p in (split_args(inner)) if p.strip()]
        return bool(parts) and all(plain_literal(p) for p in parts)
    strings = list(iter_strings(expr))
    if not strings or strings[0].start != 0 or any(s.is_f for s in strings):
        return False
    # adjacent literals ("a" "b") are still a constant
    rest = expr
    for s in reversed(strings):
        rest = rest[: s.start] + rest[s.end :]
    return rest.strip() == ""


def split_args(args: str) -> list[str]:
    """The top-level arguments of an argument list text."""
    parts: list[str] = []
    rest = args
    while rest.strip():
        first = first_arg(rest)
        parts.append(first)
        idx = rest.find(first) + len(first)
        rest = rest[idx:].lstrip()
        if rest.startswith(","):
            rest = rest[1:]
        elif rest:
            break
    return parts


def code_words(expr: str) -> set[str]:
    """Identifiers in an expression text, including those interpolated in f-strings."""
    kept: list[str] = []
    last = 0
    for s in iter_strings(expr):
        kept.append(expr[last : s.start])
        if s.is_f:
            kept.extend(re.findall(r"(?<!\{)\{([^{}]*)\}", s.body))
        last = s.end
    kept.append(expr[last:])
    return set(re.findall(r"[A-Za-z_]\w*", " ".join(kept)))


def mask_strings(text: str) -> str:
    """Blank out string-literal contents (same length, newlines kept) so sinks match code only."""
    chars = list(text)
    for s in iter_strings(text):
        for k in range(s.start, s.end):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def line_of(start: int, text: str, pos: int) -> int:
    """The block line of offset ``pos`` in a logical line that starts at line ``start``."""
    return start + text.count("\n", 0, pos)



ASSIGN_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?::[^=\n]*)?(?P<op>\+?=)(?!=)\s*(?P<rhs>.*)", re.S
)



def name_words(name: str) -> list[str]:
    """The lower-case words of an identifier (snake_case or camelCase)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]



@dataclass
class Hit:
    """A regex match on one logical line: the line's text, the match, its 1-based line in the block."""

    match: re.Match[str]
    text: str
    line: int

    @cached_property
    def args(self) -> str:
        """The argument text of the call whose opening parenthesis ends the match."""
        return call_args(self.text, self.match.end() - 1)

    @cached_property
    def first(self) -> str:
        """The first argument of that call."""
        return first_arg(self.args)


def hits_in(start: int, text: str, pattern: re.Pattern[str], masked: bool = True) -> Iterator[Hit]:
    """Matches of ``pattern`` in one logical line starting at line ``start`` (strings blanked if masked)."""
    for m in pattern.finditer(mask_strings(text) if masked else text):
        yield Hit(m, text, line_of(start, text, m.start()))


def fallback_hits(
    logical: list[tuple[int, str]], pattern: re.Pattern[str], masked: bool = True
) -> Iterator[Hit]:
    """Matches of ``pattern`` in every logical line, in order."""
    for start, text in logical:
        yield from hits_in(start, text, pattern, masked)
