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
from inspect_misalign.experiments._config import (
    GridPoint,
    SweepConfig,
    builtin_configs,
    load_config,
    with_base,
)
from inspect_misalign.experiments._curve import (
    base_distinguishability,
    curve_stops,
    curve_table,
    curve_tables,
    organism_stops,
)
from inspect_misalign.experiments._curve_figure import curve_markdown, write_curve
from inspect_misalign.experiments._demo import run_demo, summary
from inspect_misalign.experiments._em_config import EMDefensesConfig
from inspect_misalign.experiments._em_defenses import em_preflight, run_em_defenses
from inspect_misalign.experiments._organisms import (
    build_organisms_only,
    meets_deployment,
    meets_test_band,
    usefulness_meets,
)
from inspect_misalign.experiments._relearn_run import priming_runs, relearn_runs
from inspect_misalign.experiments._report import report_dir
from inspect_misalign.experiments._sweep import preflight, run_sweep
from inspect_misalign.results import results_table, samples_table

__all__ = [
    "Baseline",
    "EMDefensesConfig",
    "GridPoint",
    "SweepConfig",
    "base_distinguishability",
    "baseline_from_table",
    "build_organisms_only",
    "builtin_configs",
    "check",
    "curve_markdown",
    "curve_stops",
    "curve_table",
    "curve_tables",
    "em_preflight",
    "load_config",
    "meets_deployment",
    "meets_test_band",
    "organism_stops",
    "preflight",
    "priming_runs",
    "relearn_runs",
    "read_baseline",
    "report_dir",
    "results_table",
    "run_demo",
    "run_em_defenses",
    "run_sweep",
    "samples_table",
    "summary",
    "with_base",
    "usefulness_meets",
    "write_baseline",
    "write_curve",
]
