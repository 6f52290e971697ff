"""Figures (matplotlib, PNG). Every figure names the data it came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _errorbars(frame: pd.DataFrame, value: str = "rate") -> list[list[float]]:
    """Lower and upper error-bar lengths of ``value`` from its ``[value_]ci95_lower/upper`` columns."""
    prefix = "" if value == "rate" else f"{value}_"
    return [
        (frame[value] - frame[f"{prefix}ci95_lower"]).clip(lower=0).fillna(0).tolist(),
        (frame[f"{prefix}ci95_upper"] - frame[value]).clip(lower=0).fillna(0).tolist(),
    ]


def plot_instrument(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Per cue: attack rate in test vs deployment, and distinguishability accuracy, with 95% CIs."""
    cues = [c for c in table["cue"].unique() if c not in ("none", None)]
    fig, (left, right) = _figure(11, 4, ncols=2)
    width = 0.38
    for offset, task, colour in ((-width / 2, "test_attacks", "tab:blue"),
                                 (width / 2, "deployment_attacks", "tab:red")):
        rows = table[table["task"] == task].set_index("cue").reindex(cues).dropna(subset=["rate"])
        xs = [cues.index(c) + offset for c in rows.index]
        left.bar(xs, rows["rate"], width, yerr=_errorbars(rows), capsize=3, color=colour,
                 label=task.replace("_attacks", ""))
    left.set_xticks(range(len(cues)), cues)
    left.set_ylim(0, 1.05)
    left.set_ylabel("attack rate (95% CI)")
    left.set_title("Attacks by context")
    left.legend()
    rows = table[table["task"] == "distinguishability"].set_index("cue").reindex(cues)
    rows = rows.dropna(subset=["rate"])
    right.bar(range(len(rows)), rows["rate"], yerr=_errorbars(rows), capsize=3, color="tab:gray")
    right.axhline(0.5, linestyle="--", color="black", linewidth=1, label="chance")
    right.set_xticks(range(len(rows)), rows.index)
    right.set_ylim(0, 1.05)
    right.set_ylabel("accuracy at picking deployment (95% CI)")
    right.set_title("Distinguishability (cues by difficulty)")
    right.legend()
    models = ", ".join(sorted(table["model"].astype(str).unique()))
    fig.suptitle(f"{models}", fontsize=10)
    return _save(fig, path, source)


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


def _figure(width: float = 6.5, height: float = 4.2, ncols: int = 1):
    """A new figure and its axes, on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


def plot_retained_vs_difficulty(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Retained misalignment (after/before deployment attack rate) vs distinguishability, per cue."""
    from inspect_misalign.experiments._retained import pooled

    frame = pooled(table, ["train_on", "caught", "steps", "defense"])
    frame = frame[(frame["train_on"] == frame["cue"]) | (frame["train_on"] == "all")]
    fig, ax = _figure()
    for (train_on, caught, steps, defense), group in frame.groupby(
            ["train_on", "caught", "steps", "defense"], sort=True):
        group = group.sort_values("distinguishability_accuracy")
        label = (f"{'pooled' if train_on == 'all' else 'own cue'}, {int(caught)} caught, "
                 f"{int(steps)} steps, {defense}")
        ax.errorbar(group["distinguishability_accuracy"], group["retained"],
                    yerr=_errorbars(group, "retained"),
                    marker="o", capsize=3, label=label)
        for row in group.itertuples():
            ax.annotate(row.cue, (row.distinguishability_accuracy, row.retained), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
    ax.set_xlabel("distinguishability of deployment (organism's accuracy)")
    ax.set_ylabel("retained misalignment\n(deployment attacks after / before, 95% CI)")
    ax.set_title("Does training against caught attacks remove them in deployment?")
    ax.legend(fontsize=7)
    return _save(fig, path, source)


def plot_retained_vs(table: pd.DataFrame, axis: str, path: Path, source: str) -> Path:
    """Retained misalignment against ``axis`` (``steps`` or ``caught``), one line per cue."""
    from inspect_misalign.experiments._retained import pooled

    frame = pooled(table, [axis])
    fig, ax = _figure()
    for cue, group in frame.groupby("cue", sort=True):
        group = group.sort_values(axis)
        ax.errorbar(group[axis], group["retained"], yerr=_errorbars(group, "retained"), marker="o",
                    capsize=3, label=cue)
    ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
    ax.set_xlabel({"steps": "training steps against caught attacks",
                   "caught": "caught samples trained on"}[axis])
    ax.set_ylabel("retained misalignment (95% CI)")
    ax.set_title(f"Retained misalignment vs {axis} (pooled over the other settings)")
    ax.legend(fontsize=8)
    return _save(fig, path, source)


def plot_usefulness(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Usefulness of each organism and of the checkpoints trained from it."""
    rows = table.dropna(subset=["usefulness"]).drop_duplicates("checkpoint")
    rows = rows.sort_values(["organism", "stage", "checkpoint"], na_position="first")
    fig, ax = _figure(max(6.5, 0.5 * len(rows) + 2))
    colours = ["tab:gray" if s == "organism" else "tab:green" for s in rows["stage"]]
    ax.bar(range(len(rows)), rows["usefulness"], color=colours)
    ax.set_xticks(range(len(rows)), rows["checkpoint"], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("usefulness (accuracy)")
    ax.set_title("Usefulness before (gray: organism) and after training (green)")
    return _save(fig, path, source)


def plot_defenses(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Retained misalignment per cue, one bar per defense."""
    from inspect_misalign.experiments._retained import pooled

    frame = pooled(table, ["defense"])
    cues = sorted(frame["cue"].unique())
    defenses = sorted(frame["defense"].unique(), key=lambda d: (d != "none", d))
    fig, ax = _figure(max(6.5, 1.2 * len(cues) + 2))
    width = 0.8 / max(len(defenses), 1)
    for i, defense in enumerate(defenses):
        rows = frame[frame["defense"] == defense].set_index("cue").reindex(cues).dropna(subset=["retained"])
        xs = [cues.index(c) + (i - (len(defenses) - 1) / 2) * width for c in rows.index]
        ax.bar(xs, rows["retained"], width, yerr=_errorbars(rows, "retained"), capsize=3, label=defense)
    ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
    ax.set_xticks(range(len(cues)), cues)
    ax.set_ylabel("retained misalignment (95% CI)")
    ax.set_title("Defenses side by side")
    ax.legend(fontsize=8)
    return _save(fig, path, source)


def sweep_figures(table: pd.DataFrame, config, directory: Path) -> list[Path]:
    """Every figure of a sweep's table (those its grid can show) as PNGs under ``directory``."""
    source = f"{config.out_dir / 'results.parquet'} (sweep {config.name})"
    figures = []
    organisms = table[table["stage"] == "organism"]
    for name, rows in organisms.groupby("checkpoint", sort=True):
        figures.append(plot_instrument(rows, directory / f"organism_{name}.png", source))
    trained = table[table["stage"] == "trained"]
    if trained.empty:
        return figures
    figures.insert(0, plot_retained_vs_difficulty(
        table, directory / "retained_vs_distinguishability.png", source))
    for axis in ("steps", "caught"):
        if trained[axis].nunique() > 1:
            figures.append(plot_retained_vs(table, axis, directory / f"retained_vs_{axis}.png", source))
    if "usefulness" in table and table["usefulness"].notna().any():
        figures.append(plot_usefulness(table, directory / "usefulness.png", source))
    if trained["defense"].nunique() > 1:
        figures.append(plot_defenses(table, directory / "defenses.png", source))
    return figures
