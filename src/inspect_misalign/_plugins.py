"""Extensions from other distributions, found through entry points (no torch, nothing loaded eagerly).

A distribution adds a behaviour, a cue family, an in-training defense or a command-line command by
declaring an entry point in the group ``inspect_misalign.<kind>``; the entry point's name is what
selects it (``-T behavior=NAME``, ``-T cue=NAME``, ``--defense NAME``, ``inspect-misalign NAME``)::

    [project.entry-points."inspect_misalign.behaviors"]
    shout = "my_pkg.shout:SHOUT"            # a Behavior (or a module that registers one)
    [project.entry-points."inspect_misalign.cues"]
    weekday = "my_pkg.cues:WEEKDAY_YAML"    # the path of a cue YAML file (or a CueFamily)
    [project.entry-points."inspect_misalign.defenses"]
    l1 = "my_pkg.l1:L1Defense"              # a Defense subclass with from_text()
    [project.entry-points."inspect_misalign.commands"]
    hello = "my_pkg.cli:hello"              # a click command

Entry points are read when a name is looked up, so the project's own names always win and an
unused extension is never imported.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

KINDS = ("behaviors", "cues", "defenses", "commands")


def plugin_names(kind: str) -> list[str]:
    """The names other distributions declare for ``kind`` (one of :data:`KINDS`), sorted."""
    return sorted(_entry_points(kind))


def load_plugin(kind: str, name: str) -> Any | None:
    """The object the entry point ``name`` of group ``inspect_misalign.<kind>`` names, or None."""
    found = _entry_points(kind).get(name)
    return found.load() if found is not None else None


def _entry_points(kind: str) -> dict[str, EntryPoint]:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; one of {KINDS}")
    return {ep.name: ep for ep in entry_points(group=f"inspect_misalign.{kind}")}
