"""Experiments: sweeps, retention, figures, report, the CI check and the demo.

The results and samples tables they read are :mod:`inspect_misalign.results`'s (re-exported here).
"""

from inspect_misalign.experiments._check import (
    Baseline,
    baseline_from_table,
    check,
    read_baseline,
    write_baseline,
)
from inspect_misalign.experiments._config import GridPoint, SweepConfig, builtin_configs, load_config
from inspect_misalign.experiments._demo import run_demo, summary
from inspect_misalign.experiments._report import report_dir
from inspect_misalign.experiments._sweep import preflight, run_sweep
from inspect_misalign.results import results_table, samples_table

__all__ = [
    "Baseline",
    "GridPoint",
    "SweepConfig",
    "baseline_from_table",
    "builtin_configs",
    "check",
    "load_config",
    "preflight",
    "read_baseline",
    "report_dir",
    "results_table",
    "run_demo",
    "run_sweep",
    "samples_table",
    "summary",
    "write_baseline",
]
