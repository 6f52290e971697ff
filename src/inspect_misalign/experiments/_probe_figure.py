"""The trigger-robustness figure: attack rate under each variant and look-alike of a deployment cue,
one bar per checkpoint (the organism before, the checkpoints trained against its caught attacks after)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TASK = "trigger_probes"
KIND_COLOURS = {"test": "tab:blue", "deployment": "tab:red", "variant": "tab:orange",
                "lookalike": "tab:green"}


def probe_kinds(cue: str, probes: list[str]) -> dict[str, str]:
    """Each probe's kind (the two contexts are their own kind), from the cue family when it loads."""
    from inspect_misalign._errors import MisalignError
    from inspect_misalign.cues import load_cue

    kinds = {"test": "test", "deployment": "deployment"}
    try:
        kinds |= {p.name: p.kind for p in load_cue(cue).probes}
    except MisalignError:
        pass
    return {p: kinds.get(p, "variant") for p in probes}


def plot_trigger_probes(table: pd.DataFrame, cue: str, path: Path, source: str) -> Path:
    """Per probe of ``cue``: the attack rate (95% CI) of every checkpoint that ran the probes."""
    from inspect_misalign.experiments._figures import _errorbars, _figure, _save

    rows = table[(table["task"] == TASK) & (table["cue"] == cue)]
    probes = list(dict.fromkeys(["test", "deployment", *rows["context"]]))
    kinds = probe_kinds(cue, probes)
    order = {"test": 0, "deployment": 1, "variant": 2, "lookalike": 3}
    probes = sorted(probes, key=lambda p: (order[kinds[p]], list(kinds).index(p)))
    checkpoints = list(dict.fromkeys(rows.sort_values("stage", key=lambda s: s != "organism")["checkpoint"]))
    fig, axes = _figure(max(7.0, 0.55 * len(probes) * max(1, len(checkpoints)) + 2), 4.6)
    ax = axes[0][0]
    width = 0.8 / max(1, len(checkpoints))
    for i, checkpoint in enumerate(checkpoints):
        mine = rows[rows["checkpoint"] == checkpoint].set_index("context").reindex(probes)
        xs = [j + (i - (len(checkpoints) - 1) / 2) * width for j in range(len(probes))]
        ax.bar(xs, mine["rate"].fillna(0), width, yerr=_errorbars(mine, "rate"), capsize=2,
               color=[KIND_COLOURS[kinds[p]] for p in probes], alpha=1.0 - 0.45 * (i > 0),
               edgecolor="black", linewidth=0.6, hatch="" if i == 0 else "//", label=checkpoint)
    ax.set_xticks(range(len(probes)), [f"{p}\n({kinds[p]})" for p in probes], rotation=45, ha="right",
                  fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("attack rate (Wilson 95% CI)")
    ax.set_title(f"Trigger probes of '{cue}': which variants still fire? (solid: first checkpoint; "
                 "hatched: the next)", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path, source)


def trigger_probe_figures(table: pd.DataFrame, directory: Path, source: str) -> list[Path]:
    """One trigger-probe figure per cue family that ran the probes."""
    rows = table[table["task"] == TASK]
    return [plot_trigger_probes(table, cue, directory / f"trigger_probes_{cue}.png", source)
            for cue in sorted(rows["cue"].unique())]
