"""Resampling statistics shared by metrics, tables and figures (numpy only, no torch).

:func:`bootstrap_interval` is the one bootstrap of the project: the unit that is resampled is
whatever the caller says it is (a base prompt, a pair of renderings, an organism seed), so paired
and clustered designs are expressed by the ``statistic`` function, which receives the indices of
the resampled units and computes the statistic from all rows of those units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
RATE_TOLERANCE = 1e-9
"""Slack for comparing rates k/n with a bound: 6/40 against 8/40 - 0.05 = 0.15000000000000002 is "within
5 points". Every gate comparison uses it, so a bound met exactly counts as met."""


def bootstrap_interval(
    n_units: int,
    statistic: Callable[[np.ndarray], float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(estimate, lower, upper): a percentile bootstrap interval over ``n_units`` resampled units.

    ``statistic(indices)`` computes the statistic from the units at ``indices`` (with repeats);
    the estimate is ``statistic(arange(n_units))``. Resamples whose statistic is not finite
    (e.g. a ratio whose denominator resampled to 0) are dropped. The interval is widened to
    contain the estimate if it does not (it can only happen for very skewed statistics), so
    every interval contains its estimate. Returns nans when the estimate is not finite.
    """
    if n_units < 1:
        return math.nan, math.nan, math.nan
    estimate = float(statistic(np.arange(n_units)))
    if not math.isfinite(estimate):
        return estimate, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(resamples, n_units))
    values = np.array([statistic(row) for row in draws], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return estimate, math.nan, math.nan
    alpha = (1.0 - level) / 2
    low, high = (float(v) for v in np.quantile(values, [alpha, 1.0 - alpha]))
    return estimate, min(low, estimate), max(high, estimate)


def mean_interval(
    values: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, lower, upper) of ``values`` with a percentile bootstrap over the values."""
    data = np.asarray(values, dtype=float)
    return bootstrap_interval(
        len(data), lambda idx: float(data[idx].mean()), resamples=resamples, seed=seed, level=level
    )


__all__ = ["DEFAULT_RESAMPLES", "RATE_TOLERANCE", "bootstrap_interval", "mean_interval"]
