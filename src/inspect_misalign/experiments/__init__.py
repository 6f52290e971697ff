"""Experiments: results tables from logs, figures, and the demo."""

from inspect_misalign.experiments._table import results_table

__all__ = ["results_table"]
