"""Figures (matplotlib, PNG). Every figure names the data it came from.

Retention figures have two panels, retained deployment rate and retained gap (see
:mod:`inspect_misalign.experiments._retained`), each point with its 95% bootstrap interval and the
number of caught samples of its cue actually trained on; cues where the organism's gap before was
not significant have no retention and are listed under the panel instead.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from inspect_misalign.experiments._retained import ATTACKS, Measure, setting_keys
from inspect_misalign.experiments._sweep_table import pooled_table

PANELS = (("retained_deploy", "retained deployment rate\n(after / before)"),
          ("retained_gap", "retained gap\n((deploy - test) after / before)"))
MARKERS = "osD^vP*Xhp<>"


def _errorbars(frame: pd.DataFrame, value: str, prefix: str | None = None) -> list[list[float]]:
    """Lower and upper error-bar lengths of ``value`` from ``<prefix>ci95_lower/upper`` columns."""
    prefix = ("" if value == "rate" else f"{value}_") if prefix is None else prefix
    return [
        (frame[value] - frame[f"{prefix}ci95_lower"]).clip(lower=0).fillna(0).tolist(),
        (frame[f"{prefix}ci95_upper"] - frame[value]).clip(lower=0).fillna(0).tolist(),
    ]


def _figure(width: float = 6.5, height: float = 4.2, ncols: int = 1, nrows: int = 1):
    """A new figure and its axes (rows of columns), on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)


def _save(fig, path: Path, source: str) -> Path:
    """Label ``fig`` with its data source and write it to ``path`` atomically (temp file + rename)."""
    import matplotlib.pyplot as plt

    fig.text(0.01, 0.01, f"data: {source}", fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_instrument(table: pd.DataFrame, path: Path, source: str) -> Path:
    """An organism's attack rate per cue in test vs deployment (Wilson 95% CIs), and the
    distinguishability of its cues (accuracy of the model asked, bootstrap 95% CI over prompts)."""
    cues = [c for c in table["cue"].unique() if c not in ("none", None)]
    fig, axes = _figure(11, 4, ncols=2)
    left, right = axes[0]
    width = 0.38
    for offset, task, colour in ((-width / 2, "test_attacks", "tab:blue"),
                                 (width / 2, "deployment_attacks", "tab:red")):
        rows = table[table["task"] == task].set_index("cue").reindex(cues).dropna(subset=["rate"])
        xs = [cues.index(c) + offset for c in rows.index]
        left.bar(xs, rows["rate"], width, yerr=_errorbars(rows, "rate"), capsize=3, color=colour,
                 label=f"{task.replace('_attacks', '')} (n = {', '.join(str(int(n)) for n in rows['n'])})")
    left.set_xticks(range(len(cues)), cues)
    left.set_ylim(0, 1.3)
    left.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    left.set_ylabel("attack rate (Wilson 95% CI)")
    left.set_title("Attacks by context")
    left.legend(fontsize=8, loc="upper center", ncol=2)
    rows = table[table["cue"].isin(cues)].groupby("cue").first().reindex(cues)
    shown = [(column, prefix, label, colour) for column, prefix, label, colour in (
        ("distinguishability_accuracy", "distinguishability_", "asked: accuracy (A/B, both orders)",
         "tab:gray"),
        ("probe_auc", "probe_auc_", "hidden-state probe AUC", "tab:purple"))
        if column in rows and rows[column].notna().any()]
    bar = 0.8 / max(1, len(shown))
    for i, (column, prefix, label, colour) in enumerate(shown):
        present = rows.dropna(subset=[column])
        xs = [cues.index(c) + (i - (len(shown) - 1) / 2) * bar for c in present.index]
        right.bar(xs, present[column], bar, color=colour, yerr=_errorbars(present, column, prefix),
                  capsize=3, label=label)
    right.axhline(0.5, linestyle="--", color="black", linewidth=1, label="chance")
    right.set_xticks(range(len(cues)), cues)
    right.set_ylim(0, 1.3)
    right.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    right.set_ylabel("telling deployment from test (95% CI)")
    asked = ", ".join(sorted(rows["distinguishability_model"].dropna().astype(str).unique())) or "-"
    right.set_title(f"Distinguishability (model asked / probed: {asked})", fontsize=10)
    right.legend(fontsize=8, loc="upper center", ncol=2)
    fig.suptitle(", ".join(sorted(table["checkpoint"].astype(str).unique())), fontsize=10)
    return _save(fig, path, source)


def _overlaps(box, placed) -> bool:
    return any(box.overlaps(other) for other in placed)


def place_labels(ax, points: list[tuple[float, float, str]]) -> list:
    """Annotate points so that no two labels overlap (greedy: the first free offset of a few tried)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    offsets = [(6, 5), (6, -13), (-6, 5), (-6, -13), (6, 17), (6, -25), (-6, 17), (-6, -25), (6, 29),
               (6, -37)]
    placed, texts = [], []
    for x, y, label in points:
        for i, (dx, dy) in enumerate(offsets):
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7,
                               ha="left" if dx > 0 else "right")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not _overlaps(box, placed) or i == len(offsets) - 1:
                placed.append(box)
                texts.append(text)
                break
            text.remove()
    return texts


def _caught_label(row) -> str:
    low, high = row.caught_actual_min, row.caught_actual_max
    if pd.isna(low):
        return "caught ?"
    return f"{int(low)} caught" if low == high else f"{int(low)}-{int(high)} caught"


def _skipped_note(ax, frame: pd.DataFrame) -> None:
    """List under the panel the points without retention, with the reason."""
    empty = frame[frame["retained_reason"] != ""]
    if empty.empty:
        return
    lines = sorted({f"{r.cue}: {r.retained_reason}" for r in empty.itertuples()})
    ax.text(0.0, -0.2, "not shown - " + "\n".join(lines[:4]) + ("\n..." if len(lines) > 4 else ""),
            transform=ax.transAxes, fontsize=6, color="dimgray", va="top")


def _setting(row, keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = getattr(row, key)
        if key == "train_on":
            parts.append("pooled cues" if value == "all" else "own cue")
        elif key in ("caught", "steps"):
            parts.append(f"{int(value)} {key} asked" if key == "caught" else f"{int(value)} steps")
        elif key == "defense":
            parts.append("no defense" if value == "none" else f"defense {value}")
        else:
            parts.append(str(value))
    return ", ".join(parts)


def plot_retained_vs_difficulty(table: pd.DataFrame, samples: pd.DataFrame, path: Path, source: str,
                                measure: Measure = ATTACKS) -> Path:
    """Retained misalignment vs the organism's distinguishability, one point per cue and setting;
    error bars on both axes (bootstrap over prompts), caught counts beside each point."""
    keys = setting_keys(table, ["train_on", "caught", "steps", "defense"])
    frame = pooled_table(table, samples, keys, measure)
    frame = frame[(frame["train_on"] == frame["cue"]) | (frame["train_on"] == "all")]
    if frame["group"].nunique() > 1:
        keys = [*keys, "group"]
    fig, axes = _figure(12, 5.2, ncols=2)
    cues = sorted(frame["cue"].unique())
    for ax, (column, label) in zip(axes[0], PANELS, strict=True):
        shown = frame.dropna(subset=[column, "distinguishability_accuracy"])
        labels = []
        for i, (_, group) in enumerate(shown.groupby(keys, sort=True, dropna=False)):
            colour = f"C{i % 10}"
            for row in group.itertuples():
                ax.errorbar([row.distinguishability_accuracy], [getattr(row, column)],
                            xerr=_errorbars(group.loc[[row.Index]], "distinguishability_accuracy",
                                            "distinguishability_"),
                            yerr=_errorbars(group.loc[[row.Index]], column), linestyle="none",
                            marker=MARKERS[cues.index(row.cue) % len(MARKERS)], color=colour, capsize=3)
                labels.append((row.distinguishability_accuracy, getattr(row, column),
                               f"{row.cue} ({_caught_label(row)})"))
            ax.plot([], [], linestyle="none", marker="s", color=colour,
                    label=_setting(next(group.itertuples()), keys))
        ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
        ax.axvline(0.5, linestyle=":", color="gray", linewidth=1)
        ax.set_xlabel("distinguishability of deployment (accuracy, 95% CI)")
        ax.set_ylabel(f"{label}, 95% CI")
        place_labels(ax, labels)
        _skipped_note(ax, frame)
        if labels:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Does training against caught attacks remove them in deployment? ({measure.name}: "
                 f"{measure.unit})", fontsize=10)
    return _save(fig, path, source)


def plot_retained_vs(table: pd.DataFrame, samples: pd.DataFrame, axis: str, path: Path, source: str,
                     measure: Measure = ATTACKS) -> Path:
    """Retained misalignment against ``axis`` (``steps``, or ``caught``: the caught samples of the cue
    actually trained on), one line per cue (and organism group)."""
    frame = pooled_table(table, samples, [axis], measure)
    fig, axes = _figure(12, 4.8, ncols=2)
    several = frame["group"].nunique() > 1
    lines = setting_keys(frame, ["cue", "group"])
    for ax, (column, label) in zip(axes[0], PANELS, strict=True):
        for key, group in frame.groupby(lines, sort=True):
            cue, group_name = key[0], key[1]
            if len(key) > 2:
                cue = f"{cue}, {key[2]}"
            group = group.dropna(subset=[column]).copy()
            if group.empty:
                continue
            if axis == "caught":
                group["x"] = (group["caught_actual_min"].astype(float) + group["caught_actual_max"]) / 2
            else:
                group["x"] = group[axis].astype(float)
            group = group.sort_values("x")
            ax.errorbar(group["x"], group[column], yerr=_errorbars(group, column), marker="o", capsize=3,
                        label=f"{cue} ({group_name})" if several else cue)
        ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
        ax.set_xlabel({"steps": "training steps against caught attacks",
                       "caught": "caught samples of the cue actually trained on"}[axis])
        ax.set_ylabel(f"{label}, 95% CI")
        _skipped_note(ax, frame)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"Retained misalignment vs {axis} (pooled over the other settings; {measure.name})",
                 fontsize=10)
    return _save(fig, path, source)


def plot_usefulness(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Usefulness of each organism and of the checkpoints trained from it, with Wilson 95% CIs."""
    rows = table.dropna(subset=["usefulness"]).drop_duplicates("checkpoint")
    rows = rows.sort_values(["organism", "stage", "checkpoint"], na_position="first")
    fig, axes = _figure(max(6.5, 0.5 * len(rows) + 2))
    ax = axes[0][0]
    colours = ["tab:green" if s == "trained" else "tab:gray" for s in rows["stage"]]
    ax.bar(range(len(rows)), rows["usefulness"], color=colours, yerr=_errorbars(rows, "usefulness"),
           capsize=3)
    ax.set_xticks(range(len(rows)), rows["checkpoint"], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("usefulness (accuracy, Wilson 95% CI)")
    ax.set_title("Usefulness before (gray: organism) and after training (green)")
    return _save(fig, path, source)


def plot_defenses(table: pd.DataFrame, samples: pd.DataFrame, path: Path, source: str) -> Path:
    """Retained misalignment per cue, one bar per defense."""
    frame = pooled_table(table, samples, ["defense"])
    cues = sorted(frame["cue"].unique())
    defenses = sorted(frame["defense"].unique(), key=lambda d: (d != "none", d))
    fig, axes = _figure(max(12, 2.4 * len(cues) + 4), 4.8, ncols=2)
    width = 0.8 / max(len(defenses), 1)
    for ax, (column, label) in zip(axes[0], PANELS, strict=True):
        for i, defense in enumerate(defenses):
            rows = frame[frame["defense"] == defense].groupby("cue").first().reindex(cues)
            rows = rows.dropna(subset=[column])
            xs = [cues.index(c) + (i - (len(defenses) - 1) / 2) * width for c in rows.index]
            ax.bar(xs, rows[column], width, yerr=_errorbars(rows, column), capsize=3, label=defense)
        ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
        ax.set_xticks(range(len(cues)), cues)
        ax.set_ylabel(f"{label}, 95% CI")
        _skipped_note(ax, frame)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("Defenses side by side", fontsize=10)
    return _save(fig, path, source)


def sweep_figures(table: pd.DataFrame, samples: pd.DataFrame, config, directory: Path) -> list[Path]:
    """Every figure of a sweep's table (those its grid can show) as PNGs under ``directory``."""
    from inspect_misalign.experiments._probe_figure import trigger_probe_figures
    from inspect_misalign.experiments._retained import REPORTED

    source = f"{config.out_dir / 'results.parquet'}, samples.parquet (sweep {config.name})"
    figures = []
    for name, rows in table[table["stage"] == "organism"].groupby("checkpoint", sort=True):
        figures.append(plot_instrument(rows, directory / f"organism_{name}.png", source))
    figures += trigger_probe_figures(table, directory, source)
    trained = table[table["stage"] == "trained"]
    if trained.empty:
        return figures
    measured = [m for m in REPORTED if samples["task"].isin(m.tasks).any()]
    if not table["distinguishability_accuracy"].notna().any():
        measured = []  # nothing to put on the x axis: no empty panels
    for measure in reversed(measured):
        suffix = "" if measure is ATTACKS else f"_{measure.name}"
        figures.insert(0, plot_retained_vs_difficulty(
            table, samples, directory / f"retained_vs_distinguishability{suffix}.png", source, measure))
    from inspect_misalign.experiments._dose_figure import has_dose, plot_dose
    from inspect_misalign.experiments._sweep_table import runs_frame

    runs = runs_frame(config)
    from inspect_misalign.experiments._relearn import has_relearn, plot_relearn, read_relearn_runs

    relearn = read_relearn_runs(config.out_dir)
    if relearn is not None and has_relearn(samples, relearn):  # after the dose-response
        where = f"{config.out_dir / 'relearn.parquet'}, samples.parquet (sweep {config.name})"
        if (relearn["source"] == "primed").any():  # the equal-start control, after the curves
            from inspect_misalign.experiments._relearn_matched import plot_level_matched

            figures.insert(0, plot_level_matched(samples, relearn, directory / "relearning_level_matched.png",
                                                 where, config.name))
        if config.relearn is not None and config.relearn.primed_removed is not None:
            from inspect_misalign.experiments._relearn_matched import plot_level_matched
            from inspect_misalign.experiments._relearn_run import reference_pairs

            for group in reversed(config.relearn.primed_removed.groups):  # against a primed group
                if ((relearn["source"] == "primed_removed") & (relearn["group"] == group)).any():
                    figures.insert(0, plot_level_matched(
                        samples, relearn, directory / f"relearning_level_matched_{group}.png", where,
                        config.name, group=group, pairs=reference_pairs(config, group)))
        figures.insert(0, plot_relearn(samples, relearn, directory / "relearning.png", where, config.name))
    if has_dose(samples, runs):  # the dose-response first, then install vs remove
        from inspect_misalign.experiments._install import has_install, install_steps, plot_install

        install = install_steps(config)
        if has_install(runs, install):
            path = directory / "install_vs_remove.png"
            figures.insert(0, plot_install(samples, runs, install, path, source))
        figures.insert(0, plot_dose(samples, runs, directory / "dose_response.png", source))
    for axis in ("steps", "caught"):
        if trained[axis].nunique() > 1:
            figures.append(plot_retained_vs(table, samples, axis, directory / f"retained_vs_{axis}.png",
                                            source))
    if "usefulness" in table and table["usefulness"].notna().any():
        figures.append(plot_usefulness(table, directory / "usefulness.png", source))
    if trained["defense"].nunique() > 1:
        figures.append(plot_defenses(table, samples, directory / "defenses.png", source))
    return figures
