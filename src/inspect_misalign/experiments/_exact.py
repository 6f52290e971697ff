"""The gate's test: is a rate worse than its baseline by more than a tolerance? (numpy only)

One-sided non-inferiority test of two binomial proportions, new rate ``p1`` (``x1`` of ``n1``)
against the baseline ``p0`` (``x0`` of ``n0``), where a higher rate is worse:

    H0: p1 - p0 <= tolerance        (no worse than the tolerance allows: pass)
    H1: p1 - p0 >  tolerance        (worse by more than the tolerance: fail)

The statistic is Farrington and Manning's score statistic (1990, Stat Med 9:1447), whose variance
uses the maximum-likelihood rates restricted to the null boundary ``p1 - p0 = tolerance``. Its
p-value is Chan's exact unconditional one (1998, Stat Med 17:1403): the probability, under the
null, of every table at least as extreme as the one seen, maximised over the nuisance baseline
rate on a grid. The statistic is monotone in both counts, so the maximum over the whole null lies
on its boundary. Large samples (more than ``EXACT_CELLS`` tables) use the score statistic's normal
approximation instead. :func:`holm` adjusts the p-values of several metrics (Holm 1979).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

EXACT_CELLS = 90_601  # (n1 + 1) * (n0 + 1) up to 300 x 300 samples: exact (~1.5 s), else normal approx.
GRID = 1001  # nuisance rates on [0, 1 - tolerance]
_DECIMALS = 10  # statistics equal to this many decimals are ties


def restricted_rates(x1, n1: int, x0, n0: int, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood (p1, p0) under ``p1 - p0 = tolerance`` (Farrington–Manning closed form)."""
    p1, p0 = np.asarray(x1, float) / n1, np.asarray(x0, float) / n0
    if tolerance == 0:
        pooled = (np.asarray(x1, float) + np.asarray(x0, float)) / (n1 + n0)
        return pooled, pooled
    ratio, d = n0 / n1, tolerance
    a = 1 + ratio
    b = -(1 + ratio + p1 + ratio * p0 + d * (ratio + 2))
    c = d * d + d * (2 * p1 + ratio + 1) + p1 + ratio * p0
    e = -p1 * d * (1 + d)
    v = b**3 / (27 * a**3) - b * c / (6 * a * a) + e / (2 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b * b / (9 * a * a) - c / (3 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.where(u == 0, 0.0, v / np.where(u == 0, 1.0, u**3))
    w = (math.pi + np.arccos(np.clip(cosine, -1.0, 1.0))) / 3
    r1 = np.clip(2 * u * np.cos(w) - b / (3 * a), d, 1.0)
    return r1, r1 - d


def score_statistic(x1, n1: int, x0, n0: int, tolerance: float) -> np.ndarray:
    """Farrington–Manning statistic of ``p1 - p0 - tolerance`` (large: new rate much worse)."""
    r1, r0 = restricted_rates(x1, n1, x0, n0, tolerance)
    diff = np.asarray(x1, float) / n1 - np.asarray(x0, float) / n0 - tolerance
    var = r1 * (1 - r1) / n1 + r0 * (1 - r0) / n0
    # var = 0 only where both rates are 0 (or both 1) at tolerance 0, so diff = 0: no change, z = 0
    z = diff / np.sqrt(np.where(var > 0, var, 1.0))
    return np.round(z, _DECIMALS)


def _binomial_pmf(n: int, rates: np.ndarray) -> np.ndarray:
    """pmf[i, k] = P(Binomial(n, rates[i]) = k), from log-factorials (no scipy)."""
    k = np.arange(n + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_comb = log_fact[n] - log_fact[k] - log_fact[n - k]
    p = rates[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(k == 0, 0.0, k * np.log(p))
        log_q = np.where(k == n, 0.0, (n - k) * np.log1p(-p))
    return np.exp(log_comb + log_p + log_q)


@lru_cache(maxsize=32)
def exact_p_values(n1: int, n0: int, tolerance: float) -> np.ndarray:
    """p[x1, x0]: Chan's exact unconditional p-value of every table with these sample sizes."""
    x1, x0 = np.meshgrid(np.arange(n1 + 1), np.arange(n0 + 1), indexing="ij")
    z = score_statistic(x1, n1, x0, n0, tolerance).ravel()
    order = np.argsort(-z, kind="stable")
    ranked = z[order]
    # every table's tail ends at the last table whose statistic is >= its own (ties included)
    last = np.searchsorted(-ranked, -z, side="right") - 1
    a, b = x1.ravel()[order], x0.ravel()[order]
    best = np.zeros(z.size)
    for chunk in np.array_split(np.linspace(0.0, 1.0 - tolerance, GRID), 20):
        pmf1 = _binomial_pmf(n1, np.clip(chunk + tolerance, 0.0, 1.0))
        pmf0 = _binomial_pmf(n0, chunk)
        tails = np.cumsum(pmf1[:, a] * pmf0[:, b], axis=1)
        best = np.maximum(best, tails[:, last].max(axis=0))
    return np.minimum(best, 1.0).reshape(n1 + 1, n0 + 1)


def worse_p_value(x1: int, n1: int, x0: int, n0: int, tolerance: float) -> float:
    """One-sided p-value of "the new rate x1/n1 exceeds the baseline x0/n0 by more than tolerance".

    Exact (Chan's unconditional test with the Farrington–Manning statistic) for up to
    ``EXACT_CELLS`` tables, else the score statistic's normal approximation.
    """
    if not (0 <= x1 <= n1 and 0 <= x0 <= n0 and n1 >= 1 and n0 >= 1 and 0 <= tolerance < 1):
        raise ValueError(f"bad counts {x1}/{n1}, {x0}/{n0} or tolerance {tolerance}")
    if (n1 + 1) * (n0 + 1) <= EXACT_CELLS:
        return float(exact_p_values(n1, n0, float(tolerance))[x1, x0])
    return 1.0 - NormalDist().cdf(float(score_statistic(x1, n1, x0, n0, tolerance)))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error control): reject where adjusted p < alpha."""
    m = len(p_values)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


__all__ = ["exact_p_values", "holm", "restricted_rates", "score_statistic", "worse_p_value"]
