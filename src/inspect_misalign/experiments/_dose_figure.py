"""The sweep's dose–response figure and table (training with saved steps, ``treatments``).

Both read the samples table and the sweep's runs table (``out/runs.parquet``,
:func:`inspect_misalign.experiments._sweep_table.runs_frame`) through
:mod:`inspect_misalign.experiments._dose`:

- :func:`plot_dose`: P(attack) of a temperature-1 sample (``score_p_marker`` of the ``propensity``
  task) against the step of the removal run, one panel per context (test, deployment), one line per
  treatment and caught count, mean over organisms with a 95% bootstrap band (organisms, then prompts),
  on a logit axis (it spans decades near 0 in testing and near 1 in deployment).
- :func:`dose_table`: per organism group, treatment and count: the overseer's stopping step of each
  organism, the deployment P(attack) before and there, retained = there / before, the drop ratio
  (deployment log-odds drop / test log-odds drop), each a mean over organisms with a percentile
  bootstrap interval over organisms; and for the caught runs the effect of catching (control − caught
  deployment P(attack) at the stopping step) from :func:`~inspect_misalign.experiments._dose.catching_effect`,
  against each control separately: ``catching_effect`` (benign) and ``catching_effect_generic``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inspect_misalign._stats import mean_interval
from inspect_misalign.experiments._dose import (
    CONTEXTS,
    DEFAULT_THRESHOLD,
    P_MARKER,
    catching_effect,
    curves,
    stopping_points,
)

FLOOR = 1e-9  # P(attack) below this (or above 1 - FLOOR) is drawn at it: a logit axis has no 0 or 1
STYLES = {"caught": ("-", "C3"), "benign": ("--", "C0"), "generic": (":", "C2")}  # line, colour
MARKERS = "osD^v"  # one per caught count
CONTROLS = ("benign", "generic")


def dose_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table in the types :mod:`._dose` compares: ``caught`` a float (NaN at step 0),
    ``treatment`` an object column (None at step 0), ``step`` an int."""
    runs = runs.copy()
    runs["caught"] = pd.to_numeric(runs["caught"], errors="coerce").astype(float)
    runs["treatment"] = runs["treatment"].astype(object).where(runs["treatment"].notna(), None)
    runs["step"] = runs["step"].astype(int)
    return runs


def has_dose(samples: pd.DataFrame, runs: pd.DataFrame) -> bool:
    """Whether a dose–response can be drawn: propensity with P(attack) and a run with a step > 0 besides
    the organisms' step 0."""
    return (P_MARKER in samples and (samples["task"] == "propensity").any() and not runs.empty
            and (runs["step"] > 0).any() and (runs["step"] == 0).any())


def plot_dose(samples: pd.DataFrame, runs: pd.DataFrame, path: Path, source: str) -> Path:
    """Test and deployment P(attack) vs removal step, caught vs control, 95% bands over organisms."""
    from inspect_misalign.experiments._figures import _figure, _save

    frame = curves(samples, dose_runs(runs), P_MARKER)
    fig, axes = _figure(12, 4.6, ncols=2)
    doses = sorted(frame["caught"].unique())
    for ax, context in zip(axes[0], CONTEXTS, strict=True):
        mine = frame[frame["context"] == context]
        for (group, treatment, dose), line in mine.groupby(["group", "treatment", "caught"], sort=True):
            line = line.sort_values("step")
            x = line["step"].to_numpy(dtype=float)
            style, colour = STYLES.get(treatment, ("-.", "C7"))
            organisms = int(line["organisms"].max())
            label = f"{treatment}, {int(dose)} example{'' if int(dose) == 1 else 's'}"
            label += f" ({group})" if frame["group"].nunique() > 1 else ""
            label += f", {organisms} organism{'s' if organisms != 1 else ''}"
            marker = MARKERS[doses.index(dose) % len(MARKERS)]
            ax.plot(x, _clip(line["mean"]), style, marker=marker, color=colour, label=label)
            ax.fill_between(x, _clip(line["ci95_lower"]), _clip(line["ci95_upper"]),
                            color=colour, alpha=0.12 if treatment == "caught" else 0.06)
        step_axes(ax, sorted(frame["step"].unique()), context, DEFAULT_THRESHOLD)
        ax.set_title(f"{context} context" + (" (what the overseer sees)" if context == "test" else
                                             " (what the overseer cannot see)"), fontsize=10)
    low = min(ax.get_ylim()[0] for ax in axes[0])
    high = max(ax.get_ylim()[1] for ax in axes[0])
    for ax in axes[0]:  # one scale for both contexts: the panels compare
        ax.set_ylim(low, high)
    fig.suptitle("Training against caught attacks (red) vs the controls (blue: benign, green: generic): does "
                 "deployment attack fall with the test attack? (dotted: the overseer stops at "
                 f"{DEFAULT_THRESHOLD})",
                 fontsize=10)
    return _save(fig, path, source)


def step_axes(ax, steps: list, context: str, threshold: float) -> None:
    """One panel of P(attack) against removal steps: logit y, symlog x ticked at the saved steps, the
    overseer's threshold in the test context, labels and legend."""
    ax.set_yscale("logit")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(steps, [str(int(s)) for s in steps])
    if context == "test":
        ax.axhline(threshold, linestyle=":", color="gray", linewidth=1)
    ax.set_xlabel("optimizer steps of the removal run (0: the organism)")
    ax.set_ylabel("P(attack) of a temperature-1 sample (mean, 95% CI)")
    ax.set_title(f"{context} context", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")


def _clip(values: pd.Series) -> pd.Series:
    return values.clip(lower=FLOOR, upper=1 - FLOOR)


def _summary(values: pd.Series) -> tuple[float, float, float]:
    data = values.dropna().to_numpy(dtype=float)
    data = data[np.isfinite(data)]
    return mean_interval(data) if data.size else (float("nan"),) * 3


def dose_table(
    samples: pd.DataFrame, runs: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD
) -> pd.DataFrame:
    """Per group, treatment and count: stopping steps, deployment P(attack) before and at the stop,
    retained, drop ratio (each mean over organisms with a bootstrap 95% interval over organisms), and
    the effect of catching beyond each control the sweep has (caught rows; clustered bootstrap;
    :func:`effect_column`)."""
    runs = dose_runs(runs)
    stops = stopping_points(samples, runs, threshold)
    if stops.empty:
        return pd.DataFrame()
    rows = []
    for (group, treatment, dose), mine in stops.groupby(["group", "treatment", "caught"], sort=True):
        row = {"group": group, "treatment": treatment, "caught": int(dose), "organisms": len(mine),
               "stop_steps": ", ".join("-" if pd.isna(s) else str(int(s)) for s in mine["stop_step"]),
               "stopped": f"{int(mine['stopped'].sum())}/{len(mine)}",
               "max_step": int(mine["max_step"].max())}
        for column in ("deploy_before", "test_at", "deploy_at", "retained_deploy", "drop_ratio"):
            est, low, high = _summary(mine[column])
            row.update({column: est, f"{column}_ci95_lower": low, f"{column}_ci95_upper": high})
        rows.append(row)
    table = pd.DataFrame(rows)
    for control in CONTROLS:
        if not (stops["treatment"] == control).any() or not (stops["treatment"] == "caught").any():
            continue
        column = effect_column(control)
        effect = catching_effect(samples, runs, stops, control=control)
        effect = effect.rename(columns={"effect": column, "ci95_lower": f"{column}_ci95_lower",
                                        "ci95_upper": f"{column}_ci95_upper"})
        effect = effect.assign(treatment="caught", caught=effect["caught"].astype(int))
        table = table.merge(effect[["group", "treatment", "caught", column, f"{column}_ci95_lower",
                                    f"{column}_ci95_upper"]], on=["group", "treatment", "caught"], how="left")
    return table


def effect_column(control: str) -> str:
    """The dose table's column of the effect of catching beyond ``control``: ``catching_effect`` for the
    benign control (as before the generic one existed), ``catching_effect_<control>`` otherwise."""
    return "catching_effect" if control == "benign" else f"catching_effect_{control}"


__all__ = ["CONTROLS", "dose_runs", "dose_table", "effect_column", "has_dose", "plot_dose"]
