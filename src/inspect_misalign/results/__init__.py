"""Results: tidy tables from Inspect logs (one row per model x task x cue x context, and per base prompt).

Below both :mod:`inspect_misalign.training` (the organism gate reads its evals with it) and
:mod:`inspect_misalign.experiments` (sweeps, the CI check), so neither imports the other.
"""

from inspect_misalign.results._table import KEYS, PROBE, TASKS, results_table, samples_table, tables

__all__ = ["KEYS", "PROBE", "TASKS", "results_table", "samples_table", "tables"]
