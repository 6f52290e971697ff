"""Cue families: how deployment inputs differ from test inputs (see docs/cues.md)."""

from inspect_misalign.cues._family import (
    CONTEXTS,
    SPLITS,
    Context,
    CueFamily,
    Probe,
    Rendered,
    check_probe_names,
    parse_cue_file,
)
from inspect_misalign.cues._load import BUILTIN_CUES, canonical_cue, load_cue, load_cues

__all__ = [
    "BUILTIN_CUES",
    "CONTEXTS",
    "SPLITS",
    "Context",
    "CueFamily",
    "Probe",
    "check_probe_names",
    "Rendered",
    "canonical_cue",
    "load_cue",
    "load_cues",
    "parse_cue_file",
]
