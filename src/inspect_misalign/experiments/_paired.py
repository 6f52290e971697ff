"""Paired statistics on per-prompt data: a sign test and a clustered bootstrap (numpy only).

Before/after and test/deployment measurements of one organism are taken on the same base prompts,
so the prompt is the unit that is resampled: a *block* holds one organism's measurements as a
matrix, one row per series (e.g. "before, test context") and one column per base prompt, every
series measured on the same prompts. With one block the bootstrap resamples prompts; with several
blocks (organisms that are replicates of one recipe) it resamples organisms, then prompts within
each drawn organism. All resampling goes through :func:`inspect_misalign._stats.bootstrap_interval`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from inspect_misalign._stats import DEFAULT_RESAMPLES, bootstrap_interval

Means = list[np.ndarray]  # one vector of series means per block


def sign_test(differences: Sequence[float] | np.ndarray) -> tuple[float, int, int]:
    """(p, positive, negative): exact one-sided sign test that the differences tend to be positive.

    Zero differences are dropped; p = P(Binomial(positive + negative, 1/2) >= positive). On 0/1
    measurements of the same prompts (deployment minus test) it is the exact McNemar test on the
    discordant prompts; on continuous ones it assumes nothing about their distribution.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    positive, negative = int((d > 0).sum()), int((d < 0).sum())
    n = positive + negative
    if n == 0:
        return 1.0, 0, 0
    tail = sum(math.comb(n, k) for k in range(positive, n + 1))
    return min(1.0, tail / 2**n), positive, negative


def block_means(blocks: Sequence[np.ndarray]) -> Means:
    """The series means of every block (rows averaged over its prompts)."""
    return [b.mean(axis=1) for b in blocks]


def clustered_interval(
    blocks: Sequence[np.ndarray],
    statistic: Callable[[Means], float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(estimate, lower, upper) of ``statistic(block_means(blocks))`` with a percentile bootstrap.

    One block: prompts are resampled (the same prompts for every series of the block, which is what
    makes the comparison paired). Several blocks: blocks are resampled, then prompts within each
    drawn block. The estimate uses all data; the interval always contains it (see
    :func:`bootstrap_interval`); resamples whose statistic is not finite are dropped.
    """
    blocks = [np.atleast_2d(np.asarray(b, dtype=float)) for b in blocks]
    if not blocks or any(b.shape[1] == 0 for b in blocks):
        return math.nan, math.nan, math.nan
    if len(blocks) == 1:
        [block] = blocks
        return bootstrap_interval(block.shape[1], lambda idx: statistic([block[:, idx].mean(axis=1)]),
                                  resamples=resamples, seed=seed, level=level)
    rng = np.random.default_rng([seed, len(blocks)])
    estimate = statistic(block_means(blocks))
    calls = 0

    def two_stage(idx: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        if calls == 1:  # bootstrap_interval's first call is the estimate, on all units unresampled
            return estimate
        drawn = [blocks[i] for i in idx]
        return statistic([b[:, rng.integers(0, b.shape[1], b.shape[1])].mean(axis=1) for b in drawn])

    return bootstrap_interval(len(blocks), two_stage, resamples=resamples, seed=seed, level=level)


__all__ = ["block_means", "clustered_interval", "sign_test"]
