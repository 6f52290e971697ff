"""The shared bootstrap: estimates, coverage, containment of the estimate, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inspect_misalign._stats import bootstrap_interval, mean_interval


def test_mean_interval_estimate_and_width_match_the_normal_approximation() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(3.0, 2.0, size=400)
    est, low, high = mean_interval(values, resamples=4000, seed=0)
    assert est == float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(len(values)))
    # percentile bootstrap of a mean of 400 normals is close to mean +- 1.96 se
    assert abs(low - (est - 1.96 * se)) < 0.25 * se
    assert abs(high - (est + 1.96 * se)) < 0.25 * se


def test_intervals_contain_the_estimate_at_the_edges() -> None:
    for values in ([0.0] * 20, [1.0] * 20, [0.0] * 19 + [1.0]):
        est, low, high = mean_interval(values)
        assert low <= est <= high
    assert mean_interval([0.0] * 20) == (0.0, 0.0, 0.0)


def test_ratio_statistic_drops_undefined_resamples_and_keeps_the_estimate_inside() -> None:
    num = np.array([0, 0, 0, 0, 1, 0, 0, 0])
    den = np.array([1, 0, 0, 0, 0, 0, 0, 1])

    def ratio(idx: np.ndarray) -> float:
        d = den[idx].sum()
        return float(num[idx].sum() / d) if d else math.nan

    est, low, high = bootstrap_interval(len(num), ratio, seed=3)
    assert est == 0.5
    assert low <= est <= high


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    values = list(np.random.default_rng(0).random(50))
    assert mean_interval(values, seed=7) == mean_interval(values, seed=7)
    assert mean_interval(values, seed=7) != mean_interval(values, seed=8)


def test_no_units_or_undefined_estimate_gives_nans() -> None:
    assert all(math.isnan(v) for v in bootstrap_interval(0, lambda idx: 0.0))
    est, low, high = bootstrap_interval(3, lambda idx: math.nan)
    assert math.isnan(est) and math.isnan(low) and math.isnan(high)


def test_mean_interval_is_the_percentile_bootstrap_of_the_mean_computed_directly() -> None:
    # the same resamples drawn here with numpy: row means, then the 10% and 90% quantiles (level 0.8)
    values = np.random.default_rng(2).random(12)
    est, low, high = mean_interval(values, resamples=300, seed=5, level=0.8)
    means = values[np.random.default_rng(5).integers(0, 12, size=(300, 12))].mean(axis=1)
    assert est == float(values.mean())
    assert (low, high) == tuple(float(q) for q in np.quantile(means, [0.1, 0.9]))
    # the default seed is 0, like bootstrap_interval's
    assert mean_interval(values) == mean_interval(values, seed=0) != mean_interval(values, seed=1)


def test_bootstrap_interval_defaults_are_2000_resamples_seed_0_and_95_percent() -> None:
    # the same resamples drawn here with numpy: seed 0, 2000 rows, the 2.5% and 97.5% quantiles
    values = np.random.default_rng(4).random(9)
    est, low, high = bootstrap_interval(9, lambda idx: float(values[idx].mean()))
    means = values[np.random.default_rng(0).integers(0, 9, size=(2000, 9))].mean(axis=1)
    assert est == float(values.mean())
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), rel=1e-12)


def test_one_resample_is_an_interval_from_that_resample_to_the_estimate() -> None:
    values = np.array([0.1, 0.4, 0.2, 0.9, 0.7])
    est, low, high = bootstrap_interval(5, lambda idx: float(values[idx].mean()), resamples=1, seed=2)
    drawn = float(values[np.random.default_rng(2).integers(0, 5, size=(1, 5))].mean())
    assert est == pytest.approx(0.46)
    assert (low, high) == pytest.approx((min(drawn, 0.46), max(drawn, 0.46)))
    assert low < high  # the one resample is not the estimate here

