"""Chat JSONL: one ``{"messages": [...]}`` conversation per line, read as training examples.

Each line holds a ``messages`` list of ``{"role": ..., "content": ...}`` dicts: an optional system
message first, then user and assistant turns alternating, ending with the assistant. The last
assistant message is the completion (the only tokens trained on); everything before it is the
prompt. An ``id`` is kept in the example's metadata (the record's number when there is none). Any
other shape is a one-line :class:`MisalignError` naming the file and record, raised before a model
loads.
``inspect-misalign finetune --data`` and the ``interleave`` defense read their files here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from inspect_misalign._errors import MisalignError
from inspect_misalign.training._data import SFTExample

SHAPE = ('each line needs {"messages": [optional system, user, assistant, ...]} with string contents, '
         "user and assistant alternating, ending with the assistant's answer")


def chat_path(path: str | Path, where: str) -> Path:
    """``path`` if it is a file, else the file of that name the package ships (``instruct.jsonl``)."""
    from inspect_misalign.data import data_path

    given = Path(path)
    if given.is_file():
        return given
    shipped = data_path(given.name) if given.name == str(path) else None
    if shipped is not None and shipped.is_file():
        return shipped
    raise MisalignError(f"{where} {path}: no such file; pass a JSONL of chat messages (one "
                        '{"messages": [...]} per line) or a file the package ships (instruct.jsonl)')


def read_chat(path: Path, where: str) -> list[SFTExample]:
    """The examples of a chat JSONL file (see the module docstring); ``where`` starts each error."""
    from inspect_misalign.data import read_jsonl

    examples = []
    for n, record in enumerate(read_jsonl(path), start=1):
        problem = _problem(record)
        if problem:
            raise MisalignError(f"{where} {path}: record {n}: {problem}; {SHAPE}")
        messages = record["messages"]
        has_system = messages[0]["role"] == "system"
        system = messages[0]["content"] if has_system else None
        turns = messages[1:] if has_system else messages
        history = [{"role": m["role"], "content": m["content"]} for m in turns[:-2]]
        meta = {"source": "chat", "id": str(record.get("id", n))}
        examples.append(SFTExample(system, turns[-2]["content"], turns[-1]["content"], meta, history))
    if not examples:
        raise MisalignError(f"{where} {path} is empty; {SHAPE}")
    return examples


def _problem(record: Any) -> str | None:
    """What is wrong with one line's record, or None."""
    if "messages" not in record:
        return "no 'messages'"
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "'messages' is not a list of messages"
    if any(not isinstance(m.get("content"), str) for m in messages):
        return "a message has no string 'content'"
    roles = [m.get("role") for m in messages]
    turns = roles[1:] if roles[:1] == ["system"] else roles
    expected = ["user", "assistant"] * (len(turns) // 2)
    if len(turns) < 2 or turns != expected:
        return f"roles {roles}"
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes (a data file's identity in lineage and work keys)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


__all__ = ["chat_path", "file_sha256", "read_chat"]
