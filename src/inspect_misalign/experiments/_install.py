"""Install vs remove: does a backdoor trained in for longer take longer to train out?

A sweep whose organism groups are the same recipe trained for different numbers of optimizer steps
(``train: {steps: ...}`` in each organism's ``build:``; e.g. the shipped ``install`` config: 80, 160
and 320 steps, three seeds each) removes each with the same run (caught count, steps, saved steps).
This module puts the groups side by side:

- :func:`install_steps`: organism -> the optimizer steps it was trained for (its registry manifest,
  else its build options).
- :func:`install_table`: per install length, the dose table's caught rows (:func:`~inspect_misalign.
  experiments._dose_figure.dose_table`: each organism's stopping step, the deployment P(attack)
  before and at the stop, retained) with the install steps beside them.
- :func:`plot_install`: test and deployment P(attack) against removal steps, one line per install
  length (mean over organisms, 95% bootstrap band over organisms then prompts), and each organism's
  stopping step against its install steps (an open marker above the run's last step where it never
  stopped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inspect_misalign.experiments._dose import CONTEXTS, DEFAULT_THRESHOLD, P_MARKER, curves, stopping_points
from inspect_misalign.experiments._dose_figure import _clip, dose_runs, dose_table, step_axes


def _build_steps(build: dict[str, Any] | None) -> int | None:
    train = (build or {}).get("train") or {}
    return int(train["steps"]) if train.get("steps") is not None else None


def install_steps(config: Any) -> dict[str, int]:
    """Organism -> the optimizer steps that installed its backdoor: ``training.global_step`` of its
    registry manifest when it is registered, else ``train.steps`` of its build options (organisms with
    neither are left out)."""
    from inspect_misalign.models import is_registered, resolve

    found = {}
    for organism in config.organisms:
        steps = None
        if is_registered(organism.name):
            training = resolve(organism.name).config.get("training") or {}
            steps = training.get("global_step", training.get("steps"))
        if steps is None:
            steps = _build_steps(organism.build)
        if steps is not None:
            found[organism.name] = int(steps)
    return found


def group_steps(runs: pd.DataFrame, install: dict[str, int]) -> dict[str, int]:
    """Group -> its organisms' install steps, for groups whose organisms all share one value."""
    out = {}
    for group, organisms in runs.groupby("group")["organism"]:
        values = {install.get(o) for o in organisms.unique()}
        if len(values) == 1 and None not in values:
            out[str(group)] = int(values.pop())
    return out


def has_install(runs: pd.DataFrame, install: dict[str, int]) -> bool:
    """Whether the caught runs span at least two install lengths (one per group)."""
    runs = dose_runs(runs)
    trained = runs[(runs["step"] > 0) & (runs["treatment"] == "caught")]
    steps = group_steps(runs[runs["group"].isin(trained["group"].unique())], install)
    return len(set(steps.values())) > 1


def install_table(samples: pd.DataFrame, runs: pd.DataFrame, install: dict[str, int],
                  threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """The dose table's caught rows, one per install length (and caught count), ordered by install
    steps, with ``install_steps`` first."""
    runs = dose_runs(runs)
    table = dose_table(samples, runs, threshold)
    if table.empty:
        return table
    steps = group_steps(runs, install)
    table = table[(table["treatment"] == "caught") & table["group"].isin(steps)].copy()
    table.insert(0, "install_steps", table["group"].map(steps).astype(int))
    return table.sort_values(["install_steps", "caught"]).reset_index(drop=True)


def plot_install(samples: pd.DataFrame, runs: pd.DataFrame, install: dict[str, int], path: Path,
                 source: str, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Removal curves per install length (test, deployment) and stopping step vs install steps."""
    import matplotlib

    from inspect_misalign.experiments._figures import _figure, _save

    runs = dose_runs(runs)
    steps_of = group_steps(runs, install)
    caught_runs = runs[(runs["step"] == 0) | (runs["treatment"] == "caught")]
    frame = curves(samples, caught_runs, P_MARKER)
    frame = frame[frame["group"].isin(steps_of)]
    lengths = sorted(set(steps_of[g] for g in frame["group"].unique()))
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(lengths), 2)))
    colour = {n: colours[i] for i, n in enumerate(lengths)}
    fig, axes = _figure(16, 4.6, ncols=3)
    for ax, context in zip(axes[0][:2], CONTEXTS, strict=True):
        for (group, dose), line in frame[frame["context"] == context].groupby(["group", "caught"], sort=True):
            line = line.sort_values("step")
            n = steps_of[group]
            x = line["step"].to_numpy(dtype=float)
            label = f"installed in {n} steps, {int(dose)} caught, {int(line['organisms'].max())} organisms"
            ax.plot(x, _clip(line["mean"]), "-o", color=colour[n], label=label)
            ax.fill_between(x, _clip(line["ci95_lower"]), _clip(line["ci95_upper"]), color=colour[n],
                            alpha=0.12)
        step_axes(ax, sorted(frame["step"].unique()), context, threshold)
    _plot_stops(axes[0][2], stopping_points(samples, caught_runs, threshold), steps_of, colour)
    fig.suptitle("Install vs remove: training against caught attacks, organisms installed for "
                 f"{', '.join(str(n) for n in lengths)} steps (dotted: the overseer stops at {threshold})",
                 fontsize=10)
    return _save(fig, path, source)


def _plot_stops(ax: Any, stops: pd.DataFrame, steps_of: dict[str, int], colour: dict[int, Any]) -> None:
    """Each organism's stopping step against its install steps; never stopped: open, above its last."""
    stops = stops[stops["group"].isin(steps_of)]
    for (group, _dose), mine in stops.groupby(["group", "caught"], sort=True):
        n = steps_of[group]
        offsets = np.linspace(-0.04, 0.04, len(mine)) if len(mine) > 1 else [0.0]
        for offset, row in zip(offsets, mine.itertuples(), strict=True):
            x = n * 2 ** offset
            if row.stopped:
                ax.plot(x, row.stop_step, "o", color=colour[n])
            else:
                ax.plot(x, row.max_step * 1.5, "^", markerfacecolor="none", color=colour[n])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(sorted(colour), [str(n) for n in sorted(colour)])
    ticks = sorted({int(v) for v in stops["stop_step"].dropna()} | {int(v) for v in stops["max_step"]})
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("optimizer steps that installed the backdoor")
    ax.set_ylabel("removal steps to the stop (open ▲: not reached)")
    ax.set_title("steps to remove vs steps to install (one marker per organism)", fontsize=10)


__all__ = ["group_steps", "has_install", "install_steps", "install_table", "plot_install"]
