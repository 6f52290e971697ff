"""Files a user gives that are not what they should be: not UTF-8, or a cue's material outside its
folder. Each is a one-line MisalignError before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspect_misalign._errors import MisalignError
from inspect_misalign.cues import parse_cue_file
from inspect_misalign.experiments._check import read_baseline
from inspect_misalign.experiments._config import load_config
from inspect_misalign.tasks import test_attacks as attacks_in_testing  # not collected as a test

LATIN1 = "caf\u00e9 na\u00efve".encode("latin-1")  # valid latin-1, invalid UTF-8


def _one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("reader", ["cue", "sweep", "baseline", "dataset"])
def test_a_file_that_is_not_utf8_is_a_one_line_error(tmp_path: Path, reader: str) -> None:
    path = tmp_path / {"cue": "c.yaml", "sweep": "s.yaml", "baseline": "b.json", "dataset": "d.jsonl"}[reader]
    path.write_bytes(b"name: " + LATIN1 + b"\n")
    read = {"cue": lambda: parse_cue_file(path), "sweep": lambda: load_config(path),
            "baseline": lambda: read_baseline(path),
            "dataset": lambda: attacks_in_testing(cue="tag", dataset=str(path))}[reader]
    with pytest.raises(MisalignError, match="not UTF-8") as err:
        read()
    _one_line(err)


def _cue(folder: Path, material: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "news.yaml"
    path.write_text(json.dumps({
        "name": "news", "difficulty": 4, "description": "d",
        "test": {"template": "{item} {prompt}", "material": {**material, "where": {"side": "before"}}},
        "deployment": {"template": "{item} {prompt}", "material": {**material, "where": {"side": "after"}}},
    }))
    return path


def test_cue_material_outside_the_cue_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "items.jsonl"
    outside.parent.mkdir()
    outside.write_text('{"text": "a", "side": "before"}\n{"text": "b", "side": "after"}\n')
    with pytest.raises(MisalignError, match="outside the cue file's folder") as err:
        parse_cue_file(_cue(tmp_path / "cues", {"file": str(outside)}))
    _one_line(err)
    with pytest.raises(MisalignError, match="outside"):
        parse_cue_file(_cue(tmp_path / "cues2", {"file": "../elsewhere/items.jsonl"}))
    with pytest.raises(MisalignError, match="outside"):
        parse_cue_file(_cue(tmp_path / "cues3", {"file": "/etc/passwd"}))
    # beside the cue file, a shipped data file, or outside when the cue file says so: read
    beside = _cue(tmp_path / "cues4", {"file": "items.jsonl"})
    (beside.parent / "items.jsonl").write_text(outside.read_text())
    assert parse_cue_file(beside).material("deployment", "all") == ["b"]
    assert parse_cue_file(_cue(tmp_path / "cues5", {"file": "headlines.jsonl", "field": "text"}))
    allowed = parse_cue_file(_cue(tmp_path / "cues6", {"file": str(outside), "allow_outside": True}))
    assert allowed.material("test", "all") == ["a"]
