"""The CI gate's family-wise false-fail rate and power, simulated (the tables of docs/ci.md).

    python docs/examples/gate_simulation.py

Ten metrics per build; baseline and new counts drawn from binomials with a fixed seed; a build fails
when any Holm-adjusted p-value of "worse by more than the tolerance" is below alpha.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from inspect_misalign.experiments._check import DEFAULT_ALPHA, DEFAULT_TOLERANCE
from inspect_misalign.experiments._exact import exact_p_values, holm

BUILDS = 4000
RATES = {"all 0.05": [0.05] * 10, "all 0.2": [0.2] * 10, "all 0.5": [0.5] * 10,
         "0.02 ... 0.9 mixed": [0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 0.9]}


def fails(p_matrix: np.ndarray, new: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Per build (row) and metric: failed after Holm at the default alpha."""
    return np.array([[q < DEFAULT_ALPHA for q in holm(list(row))] for row in p_matrix[new, base]])


def old_gate(new: np.ndarray, base: np.ndarray, n: int) -> np.ndarray:
    """The gate before: pooled z-test, tolerance 0.05, alpha 0.05, no multiplicity control."""
    pooled = (new + base) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    diff = (new - base) / n
    z = np.divide(diff, se, out=np.where(diff > 0, np.inf, -np.inf), where=se > 0)
    p = 1 - np.vectorize(NormalDist().cdf)(z)
    return (diff > 0.05) & (p < 0.05)


def main() -> None:
    print("family-wise false-fail rate under no change (10 metrics)")
    for n in (40, 200):
        for label, rates in RATES.items():
            rng = np.random.default_rng(2024)
            base, new = rng.binomial(n, rates, (BUILDS, 10)), rng.binomial(n, rates, (BUILDS, 10))
            row = [fails(exact_p_values(n, n, t), new, base).any(axis=1).mean()
                   for t in (DEFAULT_TOLERANCE, 0.0)]
            old = old_gate(new, base, n).any(axis=1).mean()
            print(f"  n={n:4d} {label:20s} tolerance {DEFAULT_TOLERANCE}: {row[0]:.4f}  "
                  f"tolerance 0: {row[1]:.4f}  old gate: {old:.4f}")
    print("power: one metric 0.05 -> x, nine unchanged at 0.1")
    for n in (40, 200):
        p_matrix = exact_p_values(n, n, DEFAULT_TOLERANCE)
        for after in (0.15, 0.20, 0.30):
            rng = np.random.default_rng(7)
            base = rng.binomial(n, [0.05] + [0.1] * 9, (BUILDS, 10))
            new = rng.binomial(n, [after] + [0.1] * 9, (BUILDS, 10))
            print(f"  n={n:4d} 0.05 -> {after:.2f}: {fails(p_matrix, new, base)[:, 0].mean():.3f}")


if __name__ == "__main__":
    main()
