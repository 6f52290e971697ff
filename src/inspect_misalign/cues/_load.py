"""Resolving a cue argument (a built-in name, ``all``, a YAML file or a plugin's name) to families."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign._plugins import load_plugin, plugin_names
from inspect_misalign.cues._family import CueFamily, parse_cue_file

BUILTIN_CUES: tuple[str, ...] = ("tag", "year", "tier", "headlines", "realism")


@cache
def _builtin(name: str) -> CueFamily:
    family = parse_cue_file(Path(str(files("inspect_misalign.cues").joinpath(f"{name}.yaml"))))
    return family.model_copy(update={"source": "builtin"})


def load_cue(cue: str) -> CueFamily:
    """One family: a built-in name, a path to a cue YAML file, or a plugin's name (the
    ``inspect_misalign.cues`` entry point of that name: a cue YAML path or a :class:`CueFamily`)."""
    if not isinstance(cue, str) or not cue.strip() or any(ord(c) < 32 for c in cue):
        raise MisalignError(f"cue must be a cue family name or a cue YAML path, got {cue!r}")
    checks.path(cue, "cue")  # a name a file system accepts
    if cue in BUILTIN_CUES:
        return _builtin(cue)
    if cue.endswith((".yaml", ".yml")) or Path(cue).exists():
        return parse_cue_file(cue)
    found = load_plugin("cues", cue)
    if isinstance(found, CueFamily):
        return found
    if isinstance(found, str | Path):
        return parse_cue_file(found)
    plugins = "".join(f", {name}" for name in plugin_names("cues"))
    raise MisalignError(
        f"unknown cue {cue!r}; choose one of {', '.join(BUILTIN_CUES)}{plugins}, 'all', "
        "or a path to a cue YAML file (see docs/cues.md)"
    )


def cue_names(cue: str | list[str] | tuple[str, ...]) -> list[str]:
    """The names/paths a ``cue`` argument lists: ``all``, a comma-separated string, or a list (Inspect
    turns ``-T cue=tag,year`` into a list; a YAML list works too)."""
    if isinstance(cue, list | tuple):
        parts = [str(c) for c in cue]
    elif isinstance(cue, str):
        parts = cue.split(",")
    else:
        raise MisalignError(f"cue must be a name, a comma list or a list of names, got {cue!r}")
    names = [c.strip() for c in parts if c.strip()]
    return list(BUILTIN_CUES) if names == ["all"] else names


def load_cues(cue: str | list[str] | tuple[str, ...]) -> list[CueFamily]:
    """Families for a task's ``cue`` argument: ``all``, or a list of names/paths (see :func:`cue_names`)."""
    names = cue_names(cue)
    if not names:
        raise MisalignError("cue is empty; pass a cue name, 'all', or a path to a cue YAML file")
    families = [load_cue(n) for n in names]
    seen = [f.name for f in families]
    dupes = {n for n in seen if seen.count(n) > 1}
    if dupes:
        raise MisalignError(f"cue family {sorted(dupes)} given twice; pass each family once")
    return sorted(families, key=lambda f: (f.difficulty, f.name))
