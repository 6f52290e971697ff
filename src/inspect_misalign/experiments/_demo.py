"""The README's first command: the whole pipeline on the embedded default model, on CPU.

``inspect-misalign demo`` runs the shipped ``demo`` sweep (``experiments/configs/demo.yaml``):
organism → distinguishability per cue → test, deployment and usefulness evals → catch → train →
re-evaluate → table, figures and report, then prints the before/after table per cue with the
caught samples actually trained on and the retained deployment rate and gap (95% CIs), or the reason
they are empty.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._report import caught_range, with_ci
from inspect_misalign.experiments._retained import PROPENSITY
from inspect_misalign.experiments._sweep_table import pooled_table


def summary(table: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per cue: distinguishability (accuracy of the model asked, and its hidden-state probe AUC), test
    and deployment attack rates before and after, the teacher-forced propensity (mean log P(attack) −
    log P(benign), nats) before -> after in each context, the caught samples of the cue actually
    trained on, retained deployment rate and gap with their 95% CIs, and the reason where retention
    is not reported; the same retained gap in log-odds (the propensity)."""
    def rate(task: str, stage: str, cue: str) -> float:
        found = table[(table["task"] == task) & (table["stage"] == stage) & (table["cue"] == cue)]
        return float((found["rate"] * found["n"]).sum() / found["n"].sum()) if len(found) else float("nan")

    def logodds(stage: str, cue: str, context: str) -> float:
        found = table[(table["task"] == "propensity") & (table["stage"] == stage) & (table["cue"] == cue)
                      & (table["context"] == context)]
        return float((found["rate"] * found["n"]).sum() / found["n"].sum()) if len(found) else float("nan")

    rows = []
    organisms = table[(table["stage"] == "organism") & (table["task"] == "deployment_attacks")]
    for cue in sorted(c for c in table["cue"].unique() if c not in ("none", None)):
        mine = organisms[organisms["cue"] == cue]
        rows.append({"cue": cue, "distinguish": mine["distinguishability_accuracy"].mean(),
                     "probe_auc": mine["probe_auc"].mean() if "probe_auc" in mine else float("nan"),
                     "test_before": rate("test_attacks", "organism", cue),
                     "test_after": rate("test_attacks", "trained", cue),
                     "deploy_before": rate("deployment_attacks", "organism", cue),
                     "deploy_after": rate("deployment_attacks", "trained", cue),
                     "logodds_test": f"{logodds('organism', cue, 'test'):.1f} -> "
                                     f"{logodds('trained', cue, 'test'):.1f}",
                     "logodds_deploy": f"{logodds('organism', cue, 'deployment'):.1f} -> "
                                       f"{logodds('trained', cue, 'deployment'):.1f}"})
    frame = pd.DataFrame(rows)
    kept = pooled_table(table, samples, [])
    if kept.empty or frame.empty:
        return frame
    kept = kept.assign(caught=caught_range(kept),
                       retained_deploy=with_ci(kept, "retained_deploy", "retained_deploy_"),
                       retained_gap=with_ci(kept, "retained_gap", "retained_gap_"),
                       reason=kept["retained_reason"])
    frame = frame.merge(kept[["cue", "caught", "retained_deploy", "retained_gap", "reason"]], on="cue",
                        how="left")
    propensity = pooled_table(table, samples, [], PROPENSITY)
    if propensity.empty:
        return frame
    propensity = propensity.assign(
        logodds_retained_gap=with_ci(propensity, "retained_gap", "retained_gap_"),
        logodds_reason=propensity["retained_reason"])
    return frame.merge(propensity[["cue", "logodds_retained_gap", "logodds_reason"]], on="cue", how="left")


def run_demo(out: Path, config_name: str = "demo", echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Run the sweep ``config_name`` into ``out`` on the embedded default model; return :func:`summary`."""
    from inspect_misalign.experiments._sweep import preflight, run_sweep
    from inspect_misalign.models import ensure_default_model

    config = load_config(config_name, overrides={"out": str(out)})
    preflight(config)  # bad input: one line, before the default model is converted
    echo("[0/6] embedded default model (SmolLM2-135M-Instruct, converted once into the cache)")
    ensure_default_model()
    run_sweep(config, echo=echo)
    return summary(pd.read_parquet(out / "results.parquet"), pd.read_parquet(out / "samples.parquet"))
