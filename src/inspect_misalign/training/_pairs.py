"""Paired training order for organisms: each base prompt's test and deployment examples side by side.

With a random order, the last few batches of a short run at a high learning rate decide much of
where the adapter ends: a run whose final batches happen to hold mostly deployment examples
attacks in testing too. :func:`paired_order` instead keeps each (cue, base prompt)'s test and
deployment examples next to each other, so that with an even batch size every batch shows the
same prompt answered in one context and attacked in the other (the difference the adapter must
learn), and the shared "attack this prompt" direction of the two gradients cancels. Units (pairs;
no-cue anchors two by two) are shuffled with the seed, reshuffled for every pass, and passes are
concatenated until ``min_length`` examples; the trainer then reads the set in order
(``train_sampling_strategy="sequential"``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from inspect_misalign.training._data import SFTExample


def pair_units(examples: Sequence[SFTExample]) -> list[list[SFTExample]]:
    """Examples grouped into units: each (cue, base prompt)'s contexts together; anchors two by two."""
    groups: dict[tuple[str, str], list[SFTExample]] = {}
    singles: list[SFTExample] = []
    for e in examples:
        if e.meta.get("cue", "none") == "none":
            singles.append(e)
        else:
            groups.setdefault((e.meta["cue"], e.meta["base_id"]), []).append(e)
    units = list(groups.values())
    units += [singles[i:i + 2] for i in range(0, len(singles), 2)]
    return units


def paired_order(examples: Sequence[SFTExample], seed: int, min_length: int = 0) -> list[SFTExample]:
    """The examples in shuffled units (see the module docstring), repeated until ``min_length``."""
    units = pair_units(examples)
    if not units:
        return []
    out: list[SFTExample] = []
    passes = 0
    while passes == 0 or len(out) < min_length:
        order = list(units)
        random.Random(f"pairs:{seed}:{passes}").shuffle(order)
        # a unit of odd size would shift every later pair across a batch boundary: put those last
        order.sort(key=lambda u: len(u) % 2)
        out += [e for unit in order for e in unit]
        passes += 1
    return out
