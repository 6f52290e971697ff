"""The package's layering, read from the AST of every module under src/: packages import each other's
public names only, imports run down the layers, and every task takes its version from one table."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "inspect_misalign"

# lower layers first; a package may import its own layer and the ones below it
LAYERS: dict[str, int] = {
    "(root)": 0,  # _errors, _atomic, _stats, _text, __init__
    "data": 1,
    "cues": 2,
    "models": 2,
    "scorers": 3,
    "behaviors": 4,
    "solvers": 4,
    "tasks": 5,
    "results": 6,
    "training": 7,
    "experiments": 8,
    "cli": 9,
    "(entry point)": 9,  # _registry.py: what Inspect imports
}
# an import that runs up, on purpose: the attack scorer looks its behaviour up when it is called
# (behaviours use the scorers' metrics and judge, so an import at module level would be circular)
UPWARD_ALLOWED = {("scorers", "behaviors")}


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    if len(parts) == 1:
        return "(entry point)" if parts[0] == "_registry" else "(root)"
    return parts[0]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            private = [a.name for a in node.names if a.name.startswith("_")]  # from x import _module
            modules = [f"{node.module}.{name}" for name in private] or [node.module]
            yield from ((node.lineno, module) for module in modules)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _cross_package() -> Iterator[tuple[str, str, str, str]]:
    """(where, importing package, imported package, module) for every import of another package."""
    for path in sorted(SRC.rglob("*.py")):
        source = _package(path)
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "inspect_misalign" or len(parts) < 2:
                continue
            target = "(root)" if parts[1].startswith("_") else parts[1]
            if target != source:
                yield f"{path.relative_to(SRC.parent)}:{line}", source, target, module


def test_the_tree_is_read() -> None:
    found = list(_cross_package())
    assert len(found) > 50 and {"training", "experiments", "tasks"} <= {s for _, s, _, _ in found}


def test_no_import_reaches_into_another_packages_private_module() -> None:
    private = [f"{where} {module}" for where, source, target, module in _cross_package()
               if target != "(root)" and any(p.startswith("_") for p in module.split(".")[2:])]
    assert private == []


def test_imports_run_down_the_layers() -> None:
    unknown = {t for _, s, t, _ in _cross_package() for t in (s, t)} - set(LAYERS)
    assert not unknown, f"add {sorted(unknown)} to LAYERS"
    upward = [f"{where} ({source} -> {module})" for where, source, target, module in _cross_package()
              if LAYERS[target] > LAYERS[source] and (source, target) not in UPWARD_ALLOWED]
    assert upward == []


def test_the_layering_test_catches_a_private_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "inspect_misalign"
    (fake / "training").mkdir(parents=True)
    (fake / "training" / "x.py").write_text("from inspect_misalign.experiments._sweep import run_sweep\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    found = list(_cross_package())
    assert [(s, t) for _, s, t, _ in found] == [("training", "experiments")]
    with pytest.raises(AssertionError):
        test_no_import_reaches_into_another_packages_private_module()
    with pytest.raises(AssertionError):
        test_imports_run_down_the_layers()


def test_every_task_takes_its_version_from_one_table() -> None:
    import inspect_misalign.tasks as tasks

    assert set(tasks.TASK_VERSIONS) == {n for n in tasks.__all__ if n.islower() and n != "task_version"}
    shown = {"free_form_misalignment": {"grader": "mockllm/model"}}
    for name, version in tasks.TASK_VERSIONS.items():
        task = getattr(tasks, name)(**shown.get(name, {}))
        assert task.version == version == task.metadata["task_version"], name
