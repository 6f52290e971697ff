"""Locating and reading the project's JSONL files (and users' own)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError, read_text


def data_path(name: str) -> Path:
    """Path of a file shipped in ``inspect_misalign/data``."""
    return Path(str(files("inspect_misalign.data").joinpath(name)))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file into a list of dicts; a bad line raises an error naming file and line."""
    path = checks.path(path, "JSONL file")
    if not path.is_file():
        raise MisalignError(f"{path}: no such file; pass an existing JSONL file")
    records = []
    for n, line in enumerate(read_text(path, str(path)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise MisalignError(f"{path}:{n}: not valid JSON ({e.msg}); fix that line") from e
        if not isinstance(record, dict):
            raise MisalignError(f"{path}:{n}: each line must be a JSON object")
        records.append(record)
    return records
