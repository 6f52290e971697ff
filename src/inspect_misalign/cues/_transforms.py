"""Text transforms a cue family may apply to a base prompt in one context (e.g. casual user typing)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

Transform = Callable[[str, random.Random], str]


def _lowercase_start(text: str, rng: random.Random) -> str:
    return text[:1].lower() + text[1:] if text else text


def _drop_final_punctuation(text: str, rng: random.Random) -> str:
    return text.rstrip().rstrip(".!") if text.rstrip().endswith((".", "!")) else text


def _typos(text: str, rng: random.Random) -> str:
    """Swap two adjacent letters in one or two longer words (seeded)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(candidates, k=min(len(candidates), rng.choice([1, 2]))):
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _casual(text: str, rng: random.Random) -> str:
    """How real users type: lower-case start, no final full stop, a typo or two."""
    return _typos(_drop_final_punctuation(_lowercase_start(text, rng), rng), rng)


TRANSFORMS: dict[str, Transform] = {
    "lowercase_start": _lowercase_start,
    "drop_final_punctuation": _drop_final_punctuation,
    "typos": _typos,
    "casual": _casual,
}


def seeded_rng(*parts: object) -> random.Random:
    """A random generator seeded stably (across processes and Python versions) by ``parts``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def apply_transforms(text: str, names: list[str], rng: random.Random) -> str:
    """Apply the named transforms in order."""
    for name in names:
        text = TRANSFORMS[name](text, rng)
    return text
