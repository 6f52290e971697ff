"""Deterministic, seeded assignment of shipped data records to splits."""

from __future__ import annotations

import hashlib

SPLIT_SEED = 20261123
# dev (for choosing settings, never reported) is carved from the end of organism's interval, so the
# cumulative boundaries of catch (0.5) and eval (0.75) and hence their members are what they were
# before dev existed.
SPLIT_FRACTIONS: dict[str, float] = {"organism": 0.4, "dev": 0.1, "catch": 0.25, "eval": 0.25}
SPLIT_ORDER: tuple[str, ...] = ("organism", "dev", "catch", "eval")


def assign_split(
    record_id: str,
    seed: int = SPLIT_SEED,
    fractions: dict[str, float] = SPLIT_FRACTIONS,
) -> str:
    """Return the split ("organism", "dev", "catch" or "eval") for ``record_id``.

    The id is hashed with SHA-256 as ``f"{seed}:{record_id}"``; the first 8 bytes
    are mapped to a number in [0, 1) and cut by the cumulative ``fractions`` in the
    order organism, dev, catch, eval. The result is stable across Python versions and
    platforms. Fractions are normalised by their sum; any split missing from
    ``fractions`` gets weight zero.
    """
    weights = [float(fractions.get(name, 0.0)) for name in SPLIT_ORDER]
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"invalid split fractions: {fractions!r}")
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, weight in zip(SPLIT_ORDER, weights, strict=True):
        cumulative += weight / total
        if u < cumulative:
            return name
    # Floating-point rounding can leave cumulative a hair below 1.0.
    last_nonzero = [name for name, w in zip(SPLIT_ORDER, weights, strict=True) if w > 0]
    return last_nonzero[-1]
