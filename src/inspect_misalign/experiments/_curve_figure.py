"""The curve's figure and files: retained misalignment at the stopping point against four measures of
distinguishability, the knob's best AUC, the base's prompted accuracy and AUC and its probe AUC
(:mod:`inspect_misalign.experiments._curve`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from inspect_misalign._atomic import atomic_write_text

CHANCE_TO_PERFECT = (0.45, 1.03)
AXES = (  # column, its interval's prefix (None: known exactly), axis label, x range
    ("best_auc", None, "best possible AUC, 1 − q/2 (known)", CHANCE_TO_PERFECT),
    ("prompted_accuracy", "prompted", "base's prompted accuracy (balanced pairs)", CHANCE_TO_PERFECT),
    # the answer probability can rank the contexts the wrong way round: below 0.5 is information too
    ("prompted_auc", "prompted_auc", "base's prompted AUC (answer probability)", (-0.03, 1.03)),
    ("probe_auc", "probe", "base's hidden-state probe AUC", CHANCE_TO_PERFECT),
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
    for ax, (column, prefix, label, xlim) in zip(grid[0], axes, strict=True):
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
        ax.set_xlim(*xlim)
        ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)  # chance
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
    ("prompted_auc", "base prompted AUC", "ci:prompted_auc"),
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


def _markdown(table: pd.DataFrame, columns: list[tuple[str, str, str]]) -> str:
    """``table`` as Markdown, one row per table row, with the given (column, header, format)s."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row, c, f) for c, _, f in columns) + " |")
    return "\n".join(lines) + "\n"


def curve_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, one row per point, intervals in brackets."""
    return _markdown(table, [c for c in MARKDOWN if c[0] in table])


STOPS_MARKDOWN = [  # column, header, format
    ("cue", "cue", "{}"), ("organism", "organism", "{}"), ("test_before", "test P before", "{:.3g}"),
    ("deploy_before", "deploy P before", "{:.3g}"), ("stop_step", "stop step", "{:.0f}"),
    ("test_at", "test P at stop", "{:.3g}"), ("deploy_at", "deploy P at stop", "{:.3g}"),
    ("retained", "retained", "{:.3g}"), ("drop_ratio", "drop ratio", "{:.3g}"),
]


def stops_markdown(stops: pd.DataFrame) -> str:
    """The per-organism table as Markdown; an organism that never stopped shows "—" as its stop step
    and its last step's values."""
    return _markdown(stops, STOPS_MARKDOWN)


def group_order(stops: pd.DataFrame, order: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The (sweep, group) pairs of ``stops`` in the order their colours are given: those in ``order``
    first, in its order, then the rest in their order of appearance."""
    present = list(dict.fromkeys(zip(stops["sweep"], stops["group"], strict=True)))
    first = [g for g in dict.fromkeys(order or []) if g in present]
    return first + [g for g in present if g not in first]


def plot_stops(stops: pd.DataFrame, path: Path, source: str,
               order: list[tuple[str, str]] | None = None) -> Path:
    """Per organism, retained deployment P(attack) against the step the overseer judged it at (left)
    and against its test P(attack) before training (right): one colour and marker per organism group,
    the i-th (sweep, group) of ``order`` getting the curve figure's i-th colour (groups not in it follow,
    in their order in ``stops``); hollow markers never reached the threshold and are drawn at their
    last step."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from inspect_misalign.experiments._figures import MARKERS, _figure, _save

    fig, grid = _figure(width=9.0, height=4.0, ncols=2)
    left, right = grid[0]
    groups = group_order(stops, order)
    cues = [c for _, g in groups for c in stops.loc[stops["group"] == g, "cue"].iloc[:1]]
    repeated = pd.Series(cues).duplicated(keep=False).tolist()
    for i, ((sweep, group), cue, again) in enumerate(zip(groups, cues, repeated, strict=True)):
        mine = stops[(stops["sweep"] == sweep) & (stops["group"] == group)]
        colour, marker = f"C{i % 10}", MARKERS[i % len(MARKERS)]
        jitter = 1 + 0.06 * (i - (len(groups) - 1) / 2)  # side by side at a shared step (log axis)
        for stopped, face in ((True, colour), (False, "none")):
            part = mine[mine["stopped"] == stopped]
            label = f"{cue}{f' ({sweep})' if again else ''}" if stopped or not mine["stopped"].any() else None
            left.scatter(part["step_judged"] * jitter, part["retained"], marker=marker, s=45,
                         facecolors=face, edgecolors=colour, label=label)
            right.scatter(part["test_before"], part["retained"], marker=marker, s=45,
                          facecolors=face, edgecolors=colour)
    steps = sorted(stops["step_judged"].unique())
    left.set_xscale("log", base=2)
    left.set_xticks(steps, [str(s) for s in steps])
    left.set_xlabel("step the overseer stops at (hollow: never stopped, last step)")
    befores = stops["test_before"][stops["test_before"] > 0]
    if befores.nunique() == 1:  # one value: give the log axis a range instead of a singular one
        right.set_xlim(float(befores.iloc[0]) / 2, float(befores.iloc[0]) * 2)
    right.set_xscale("log")
    right.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    right.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel("test P(attack) before training against caught attacks")
    left.set_title("retained against when the overseer stops", fontsize=9)
    right.set_title("retained against the organism's leak in testing", fontsize=9)
    for ax in (left, right):
        ax.set_ylim(-0.05, 1.1)
        ax.grid(alpha=0.3)
    left.set_ylabel("retained deployment P(attack) at that step")
    left.legend(fontsize=7, loc="lower left", title="one marker per organism seed", title_fontsize=7)
    return _save(fig, path, source)


def write_curve(table: pd.DataFrame, out: Path, source: str,
                stops: pd.DataFrame | None = None) -> list[Path]:
    """``curve.csv``, ``curve.md`` and ``curve.png`` in ``out`` and, with the per-organism ``stops``,
    ``stops.csv``, ``stops.md`` and ``stops.png``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "curve.csv", table.to_csv(index=False))
    atomic_write_text(out / "curve.md", curve_markdown(table))
    paths = [out / "curve.csv", out / "curve.md", plot_curve(table, out / "curve.png", source)]
    if stops is not None and len(stops):
        atomic_write_text(out / "stops.csv", stops.to_csv(index=False))
        atomic_write_text(out / "stops.md", stops_markdown(stops))
        order = list(zip(table["sweep"], table["group"], strict=True))  # one colour per group in both figures
        paths += [out / "stops.csv", out / "stops.md", plot_stops(stops, out / "stops.png", source, order)]
    return paths


__all__ = ["curve_markdown", "group_order", "plot_curve", "plot_stops", "stops_markdown", "write_curve"]
