"""Experiments: sweeps, retention, figures, report, the CI check and the demo.

The results and samples tables they read are :mod:`inspect_misalign.results`'s (re-exported here).
"""

from inspect_misalign.results import results_table, samples_table

__all__ = ["results_table", "samples_table"]
