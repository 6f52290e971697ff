"""`--dir` (issue 19): a run's root that holds another checkpoint, or files no run of that name wrote,
is refused without `--overwrite`, in one line, and nothing in it changes (hashed before and after)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from caught import attack_log
from click.testing import CliRunner

from inspect_misalign.cli import main
from inspect_misalign.models import is_registered, list_models, resolve
from inspect_misalign.training import catch


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path) with the SHA-256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def caught_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root_caught")
    out = root / "caught.jsonl"
    catch([attack_log(root / "log", rate=0.5, prompts=8)], out)
    return out


def _train(model: Path, caught: Path, out: str, directory: Path, *extra: str) -> object:
    return CliRunner().invoke(main, ["train", "--model", str(model), "--caught", str(caught), "--steps", "1",
                                     "--batch-size", "2", "--answer-tokens", "4", "--out", out,
                                     "--dir", str(directory), *extra])


def test_dir_of_another_checkpoint_is_refused_and_left_unchanged(
    caught_file, tiny_model_dir, misalign_home, tmp_path
) -> None:
    base = shutil.copytree(tiny_model_dir, tmp_path / "base")
    first_dir = tmp_path / "first"
    done = _train(base, caught_file, "first", first_dir)
    assert done.exit_code == 0, done.output
    before = tree_hashes(first_dir)
    assert any(name.startswith("adapter/") for name in before)
    manifest = resolve("first")

    result = _train(base, caught_file, "second", first_dir)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "holds the checkpoint of 'first'" in lines[0], result.output
    assert tree_hashes(first_dir) == before  # not one byte of the other checkpoint changed
    assert not is_registered("second") and resolve("first").path == manifest.path
    assert [m.name for m in list_models()] == ["first"]


def test_dir_with_foreign_files_is_refused(caught_file, tiny_model_dir, misalign_home, tmp_path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    before = tree_hashes(busy)
    result = _train(tiny_model_dir, caught_file, "x", busy)
    assert result.exit_code == 2 and "is not empty (notes.txt)" in result.output, result.output
    assert tree_hashes(busy) == before and not list_models()


def test_dir_that_is_a_file_is_refused(caught_file, tiny_model_dir, misalign_home, tmp_path) -> None:
    target = tmp_path / "a_file"
    target.write_text("keep")
    result = _train(tiny_model_dir, caught_file, "x", target)
    assert result.exit_code == 2 and "is a file" in result.output, result.output
    assert target.read_text() == "keep" and not list_models()
