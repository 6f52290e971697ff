"""Every third-party package the sources import is declared, and the declared ranges hold what CI tests."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    """Top-level names of every module imported by src/ (real imports, not code inside strings)."""
    found: set[str] = set()
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"inspect_misalign", "__future__"}


def _constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = Version(version)
    return pins


def test_every_imported_package_is_declared() -> None:
    declared = {_norm(Requirement(r).name) for r in PROJECT["dependencies"]}
    providers = packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        dists = {_norm(d) for d in providers.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not in [project] dependencies: {missing}"
    assert {"filelock", "anyio", "numpy"} <= declared


def test_the_tested_versions_lie_in_the_declared_ranges_at_their_top() -> None:
    pins = _constraints()
    extras = [r for extra in PROJECT["optional-dependencies"].values() for r in extra]  # dev, mutants
    requirements = [Requirement(r) for r in PROJECT["dependencies"] + extras]
    for requirement in requirements:
        tested = pins[_norm(requirement.name)]  # every declared package is pinned for CI
        assert requirement.specifier.contains(tested, prereleases=True), (requirement, tested)
        uppers = [Version(s.version) for s in requirement.specifier if s.operator in ("<=", "==")]
        assert uppers == [tested], f"{requirement}: the upper bound should be the tested {tested}"


def test_the_build_backend_supports_the_license_string() -> None:
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    [setuptools] = [Requirement(r) for r in build["requires"] if r.startswith("setuptools")]
    assert isinstance(PROJECT["license"], str)
    assert not setuptools.specifier.contains("76.1.0") and setuptools.specifier.contains("77.0.0")
