"""The curve's figure and files: retained misalignment at the stopping point against three measures of
distinguishability (:mod:`inspect_misalign.experiments._curve`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from inspect_misalign._atomic import atomic_write_text

AXES = (  # column, its interval's prefix (None: known exactly), axis label
    ("best_auc", None, "best possible AUC, 1 − q/2 (known)"),
    ("prompted_accuracy", "prompted", "base's prompted accuracy (balanced pairs)"),
    ("probe_auc", "probe", "base's hidden-state probe AUC"),
)


def plot_curve(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Retained deployment P(attack) at the overseer's stop (mean over organism seeds, 95% bootstrap
    over seeds) against each distinguishability axis the table has, one colour and marker per point
    (cue or knob level); the bound the stopping rule itself puts on retention (q > 0) drawn as a bar
    of the point's colour."""
    from inspect_misalign.experiments._figures import MARKERS, _errorbars, _figure, _save

    axes = [a for a in AXES if a[0] in table and table[a[0]].notna().any()]
    fig, grid = _figure(width=4.2 * len(axes), height=4.0, ncols=len(axes))
    repeated = table["cue"].duplicated(keep=False)
    names = [f"{r.cue} (q = {r.q:g})" + (f", {r.sweep}" if again else "")
             for r, again in zip(table.itertuples(), repeated, strict=True)]
    for ax, (column, prefix, label) in zip(grid[0], axes, strict=True):
        for i in range(len(table)):
            one = table.iloc[[i]]
            if one[column].isna().all():
                continue
            colour, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
            xerr = None if prefix is None else _errorbars(one, column, f"{prefix}_")
            ax.errorbar(one[column], one["retained"], yerr=_errorbars(one, "retained"), xerr=xerr, fmt=marker,
                        color=colour, capsize=3, label=names[i])
            bound = (one["stop_bound"] / one["deploy_before"]).clip(upper=1.0)
            if bound.notna().all():
                ax.scatter(one[column], bound, marker="_", s=400, color=colour, alpha=0.6)
        ax.set_xlabel(label)
        ax.set_xlim(0.45, 1.03)  # one range for every axis: chance to perfect
        ax.set_ylim(-0.05, 1.1)
        ax.grid(alpha=0.3)
    grid[0][0].set_ylabel("retained deployment P(attack) at the stop")
    grid[0][0].legend(fontsize=7, loc="center left", title="bars: most the stopping rule allows",
                      title_fontsize=7)
    return _save(fig, path, source)


MARKDOWN = [  # column, header, format
    ("cue", "cue", "{}"), ("q", "q", "{:g}"), ("best_auc", "best AUC", "{:.3g}"),
    ("organisms", "seeds", "{}"), ("stop_steps", "stop steps", "{}"), ("stopped", "stopped", "{}"),
    ("test_before", "test P before", "ci"), ("deploy_before", "deploy P before", "ci"),
    ("deploy_at_stop", "deploy P at stop", "ci"), ("retained", "retained", "ci"),
    ("stop_bound", "bound at stop", "{:.3g}"), ("deploy_last", "deploy P after all steps", "ci"),
    ("test_own_before", "test P before (own rendering)", "ci"),
    ("test_own_at_stop", "test P at stop (own rendering)", "ci"),
    ("caught_shown_deployment", "caught shown deploy", "{:.2f}"),
    ("effect_benign", "effect of catching vs benign", "ci"),
    ("effect_generic", "effect of catching vs generic", "ci"),
    ("prompted_accuracy", "base prompted acc", "ci:prompted"),
    ("prompted_auc", "base prompted AUC", "{:.3g}"),
    ("probe_auc", "base probe AUC", "ci:probe"),
]


def _cell(row: pd.Series, column: str, form: str) -> str:
    value = row.get(column, math.nan)
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if form.startswith("ci"):
        prefix = form.split(":")[1] if ":" in form else column
        return f"{value:.3g} [{row[f'{prefix}_ci95_lower']:.3g}, {row[f'{prefix}_ci95_upper']:.3g}]"
    return form.format(value)


def curve_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, one row per point, intervals in brackets."""
    columns = [c for c in MARKDOWN if c[0] in table]
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row, c, f) for c, _, f in columns) + " |")
    return "\n".join(lines) + "\n"


def write_curve(table: pd.DataFrame, out: Path, source: str) -> list[Path]:
    """``curve.csv``, ``curve.md`` and ``curve.png`` in ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curve.csv", table.to_csv(index=False))
    atomic_write_text(out / "curve.md", curve_markdown(table))
    return [out / "curve.csv", out / "curve.md", plot_curve(table, out / "curve.png", source)]


__all__ = ["curve_markdown", "plot_curve", "write_curve"]
