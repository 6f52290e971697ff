"""Metrics: attack rate with a Wilson 95% interval; ROC AUC and a cluster bootstrap for AUC metrics."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from inspect_ai.scorer import Metric, SampleScore, grouped, metric

from inspect_misalign._stats import bootstrap_interval

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n == 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    if p in (0.0, 1.0):  # the closed form is exact here; avoid 1e-17 rounding off the bound
        bound = z * z / (n + z * z)
        return (0.0, bound) if p == 0.0 else (1.0 - bound, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _values(scores: list[SampleScore]) -> list[float]:
    return [float(s.score.as_float()) for s in scores]


@metric
def attack_rate() -> Metric:
    """Fraction of samples on which the attack scorer fired."""

    def compute(scores: list[SampleScore]) -> float:
        values = _values(scores)
        return sum(values) / len(values) if values else math.nan

    return compute


@metric
def ci95_lower() -> Metric:
    """Lower bound of the Wilson 95% interval of the mean of 0/1 scores."""

    def compute(scores: list[SampleScore]) -> float:
        values = _values(scores)
        return wilson_interval(sum(values), len(values))[0]

    return compute


@metric
def ci95_upper() -> Metric:
    """Upper bound of the Wilson 95% interval of the mean of 0/1 scores."""

    def compute(scores: list[SampleScore]) -> float:
        values = _values(scores)
        return wilson_interval(sum(values), len(values))[1]

    return compute


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC (Mann-Whitney U from average ranks, ties count half); nan unless both classes occur."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=float)
    sorted_s = s[order]
    # average rank of each run of equal scores (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def clustered_interval(
    clusters: Sequence[Hashable],
    statistic: Callable[[np.ndarray], float],
    *,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, lower, upper): percentile bootstrap of ``statistic(rows)`` resampling whole clusters.

    ``clusters[i]`` names the cluster of row i (a pair, a base prompt); every resample draws clusters
    with replacement and passes the row indices of all their members to ``statistic``.
    """
    members: dict[Hashable, list[int]] = {}
    for row, cluster in enumerate(clusters):
        members.setdefault(cluster, []).append(row)
    groups = [np.asarray(rows, dtype=int) for rows in members.values()]

    def on_units(units: np.ndarray) -> float:
        return statistic(np.concatenate([groups[u] for u in units]))

    return bootstrap_interval(len(groups), on_units, seed=seed)


def metric_key(cue: str, name: str, headline: str) -> str:
    """Key of a per-cue metric in a log: the cue itself for the headline metric, else cue_name."""
    return cue if name == headline else f"{cue}_{name}"


def by_cue(metrics: dict[str, Metric], headline: str) -> list[Metric]:
    """Group metrics by sample metadata ``cue`` (plus ``all``), keyed as :func:`metric_key` says."""
    return [
        grouped(
            m,
            "cue",
            name_template=metric_key("{group_name}", name, headline),
            all_label=metric_key("all", name, headline),
        )
        for name, m in metrics.items()
    ]
