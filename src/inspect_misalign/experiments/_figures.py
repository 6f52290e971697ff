"""Figures (matplotlib, PNG). Every figure names the data it came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _errorbars(frame: pd.DataFrame) -> list[list[float]]:
    return [
        (frame["rate"] - frame["ci95_lower"]).clip(lower=0).tolist(),
        (frame["ci95_upper"] - frame["rate"]).clip(lower=0).tolist(),
    ]


def plot_instrument(table: pd.DataFrame, path: Path, source: str) -> Path:
    """Per cue: attack rate in test vs deployment, and distinguishability accuracy, with 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cues = [c for c in table["cue"].unique() if c not in ("none", None)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
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
    fig.text(0.01, 0.01, f"data: {source}", fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
