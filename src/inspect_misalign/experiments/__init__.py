"""Experiments: results and per-prompt samples tables from logs, retention, figures, and the demo."""

from inspect_misalign.experiments._table import results_table, samples_table

__all__ = ["results_table", "samples_table"]
