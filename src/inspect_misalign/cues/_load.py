"""Resolving a cue argument (a built-in name, ``all``, a YAML file or a plugin's name) to families.

Any of them may carry an overlap (the difficulty knob, see :mod:`._family`): ``tag@0.25`` is the
``tag`` family with a quarter of test inputs rendered as deployment, named ``tag-q25``; that name is
itself a valid cue argument for built-in families, so results, sweeps and metric keys can use it.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib.resources import files
from pathlib import Path

from inspect_misalign import _checks as checks
from inspect_misalign._errors import MisalignError
from inspect_misalign._plugins import load_plugin, plugin_names
from inspect_misalign.cues._family import CueFamily, parse_cue_file

BUILTIN_CUES: tuple[str, ...] = ("tag", "year", "tier", "headlines", "realism")
_LEVEL_NAME = re.compile(r"^(?P<base>[a-z][a-z0-9_-]*)-q(?P<pct>\d+(?:_\d+)?)$")


@cache
def _builtin(name: str) -> CueFamily:
    family = parse_cue_file(Path(str(files("inspect_misalign.cues").joinpath(f"{name}.yaml"))))
    return family.model_copy(update={"source": "builtin"})


def overlap_name(name: str, q: float) -> str:
    """``tag`` at q = 0.25 -> ``tag-q25`` (percent; ``_`` for a decimal point: 0.125 -> ``q12_5``)."""
    return f"{name}-q{round(100 * q, 6):g}".replace(".", "_")


def with_overlap(family: CueFamily, q: float) -> CueFamily:
    """The family with a share q of test inputs rendered as deployment (name ``<name>-q<percent>``)."""
    if family.overlap:
        raise MisalignError(f"cue {family.name!r} already has an overlap ({family.overlap}); give one")
    if math.isnan(q) or not 0 <= q < 1:
        raise MisalignError(f"cue overlap must be in [0, 1), got {q} (e.g. tag@0.25)")
    level = family.model_copy(update={
        "name": overlap_name(family.name, q),
        "overlap": q,
        "description": f"{family.description} A share {q:g} of test inputs carry the deployment "
                       f"rendering (best possible AUC {1 - q / 2:g}).",
    })
    level._seed_name = family.seed_name
    return level


def split_overlap(cue: str) -> tuple[str, float | None]:
    """``"tag@0.25"`` -> ``("tag", 0.25)``, ``"tag-q25"`` -> ``("tag", 0.25)``, else ``(cue, None)``."""
    level = _LEVEL_NAME.match(cue)
    if level and level["base"] in BUILTIN_CUES:
        return level["base"], float(level["pct"].replace("_", ".")) / 100
    if "@" not in cue or Path(cue).exists():
        return cue, None
    base, _, text = cue.rpartition("@")
    try:
        return base, float(text)
    except ValueError:
        raise MisalignError(f"cue {cue!r}: the overlap after '@' must be a number in [0, 1), "
                            "e.g. tag@0.25") from None


def canonical_cue(cue: str) -> str:
    """The family name a built-in cue argument renders under (``tag@0.25`` -> ``tag-q25``); other
    arguments (YAML paths) unchanged."""
    base, q = split_overlap(cue)
    return overlap_name(base, q) if q is not None and base in BUILTIN_CUES else cue


def load_cue(cue: str) -> CueFamily:
    """One family: a built-in name, a path to a cue YAML file, or a plugin's name (the
    ``inspect_misalign.cues`` entry point of that name: a cue YAML path or a :class:`CueFamily`),
    optionally ``@q`` (an overlap)."""
    if not isinstance(cue, str) or not cue.strip() or any(ord(c) < 32 for c in cue):
        raise MisalignError(f"cue must be a cue family name or a cue YAML path, got {cue!r}")
    checks.path(cue, "cue")  # a name a file system accepts
    base, q = split_overlap(cue)
    if q is not None:
        return with_overlap(load_cue(base), q)
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
        "or a path to a cue YAML file, optionally with @overlap (tag@0.25; see docs/cues.md)"
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
