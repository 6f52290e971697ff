"""Linear-probe separability (numpy only): L2 logistic regression, prompt-disjoint folds, CV AUC.

The probe is fit by Newton's method on standardised features. The L2-regularised optimum lies in the
row space of the (centred) training features, so the fit runs exactly in that space (at most n - 1
dimensions however wide the hidden states are). Both renderings of a base prompt always fall in the
same fold, so the probe never sees the held-out prompt's other rendering.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from inspect_misalign.scorers._metrics import clustered_interval, roc_auc

DEFAULT_L2 = 1.0
"""Fixed in advance (sklearn's default C = 1 on the sum of losses); never tuned on reported data."""
DEFAULT_FOLDS = 5


def prompt_folds(groups: Sequence[Hashable], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per row: the groups (base prompts) are shuffled and dealt into ``k`` folds."""
    unique = sorted({str(g) for g in groups})
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: n % k for n, i in enumerate(order)}
    return np.array([fold_of[str(g)] for g in groups], dtype=int)


def _loss(a: np.ndarray, y: np.ndarray, theta: np.ndarray, penalty: np.ndarray) -> float:
    f = a @ theta
    return float(np.sum(np.logaddexp(0.0, f) - y * f) + 0.5 * np.sum(penalty * theta * theta))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = DEFAULT_L2, max_iter: int = 100, tol: float = 1e-9
) -> tuple[np.ndarray, float]:
    """(w, b) minimising sum log(1 + exp(-(2y-1)(x·w + b))) + l2/2 |w|² on standardised ``x``.

    Returned in the units of ``x``: the score of a row is ``x @ w + b``. The intercept is not
    penalised; features constant in ``x`` get weight 0.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    _, sing, vt = np.linalg.svd(z, full_matrices=False)
    keep = sing > (sing[0] * 1e-10 if sing.size and sing[0] > 0 else np.inf)
    basis = vt[keep].T  # d x r: the row space of z
    a = np.c_[z @ basis, np.ones(len(z))]
    penalty = np.r_[np.full(basis.shape[1], l2), 0.0]
    theta = np.zeros(a.shape[1])
    for _ in range(max_iter):
        p = np.exp(-np.logaddexp(0.0, -(a @ theta)))
        grad = a.T @ (p - y) + penalty * theta
        if np.max(np.abs(grad)) < tol:
            break
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        before, t = _loss(a, y, theta, penalty), 1.0
        while _loss(a, y, theta - t * step, penalty) > before - 1e-4 * t * float(grad @ step) and t > 1e-8:
            t /= 2
        theta = theta - t * step
    w = basis @ theta[:-1] / scale
    return w, float(theta[-1] - mean @ w)


def cross_validated_scores(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[Hashable],
    *,
    folds: int = DEFAULT_FOLDS,
    l2: float = DEFAULT_L2,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold probe scores: each row scored by a probe fit on the other folds' prompts."""
    k = min(folds, len({str(g) for g in groups}))
    fold = prompt_folds(groups, k, seed)
    scores = np.empty(len(y), dtype=float)
    for f in range(k):
        train, test = fold != f, fold == f
        w, b = fit_logistic(x[train], y[train], l2)
        scores[test] = x[test] @ w + b
    return scores


def probe_auc(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[Hashable],
    *,
    folds: int = DEFAULT_FOLDS,
    l2: float = DEFAULT_L2,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(AUC, lower, upper): cross-validated probe AUC, 95% bootstrap CI over prompts (``groups``).

    The interval resamples prompts (both renderings together) for the AUC of the fixed out-of-fold
    scores; it does not refit the probe. Nans when fewer than two prompts or one class only.
    """
    y = np.asarray(y, dtype=float)
    if len({str(g) for g in groups}) < 2 or len(set(y.tolist())) < 2:
        return np.nan, np.nan, np.nan
    scores = cross_validated_scores(np.asarray(x, dtype=float), y, groups, folds=folds, l2=l2, seed=seed)
    return clustered_interval(groups, lambda rows: roc_auc(y[rows], scores[rows]), seed=seed)
