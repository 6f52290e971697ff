"""Relearning from equal starting levels: does a removed organism relearn faster than a model that never
had the backdoor *and started where it did*?

A removed organism starts relearning far above the base (P(attack) 1e-5 to 1e-2 against about 1e-11), so
"faster than the base" can come from the starting level alone. ``relearn.primed`` adds bases primed to
raised levels (:mod:`._relearn_run`); together with the base they give, for each relearning dataset (data,
k, seed) and step s, a *reference curve*: where a never-backdoored model that started at level x stands
after s steps. Everything is on the log-odds scale, mean over prompts of log(P / (1 − P)) with P clipped to
[1e-12, 1 − 1e-9] (the scale on which the levels differ by orders of magnitude).

For each removed organism: its start x and its value y after s steps; the reference at x, linearly
interpolated between the never-backdoored models whose starts bracket x (none outside their range: no
extrapolation); *excess* = y − reference. Excess > 0: the removed organism relearns faster than its
starting level alone predicts (suppressed, not erased).

- :func:`level_matched`: one row per removed organism, removing treatment, dataset and step;
- :func:`level_matched_summary`: per removing treatment, dataset and step, the mean excess over the
  organisms inside the reference range with a 95% bootstrap interval (organisms, then prompts; the
  reference recomputed on each draw of prompts), and how many are above their reference;
- :func:`plot_level_matched`: value after s steps against the start, the reference curve and the removed
  organisms, one panel per step and k.

Each takes ``group``: the references are then that group's removed organisms and their primed checkpoints
(``relearn.primed_removed``, e.g. sham installs: the install and the removal without the backdoor) instead
of the base and the primed bases, with the same removing treatment; ``pairs`` (organism -> the group's
organism, :func:`~._relearn_run.reference_pairs`) restricts each organism's references to its partner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from inspect_misalign.experiments._dose import P_MARKER
from inspect_misalign.experiments._paired import clustered_interval
from inspect_misalign.experiments._relearn import STYLES, relearn_values

CLIP = (1e-12, 1 - 1e-9)
PAIR_COLOURS = ("C9", "C1", "C6", "C8", "C5", "C4")  # one per reference organism of a primed group
DATASET = ["data", "k", "seed"]


def logit(p: np.ndarray | pd.Series) -> np.ndarray:
    """log(P / (1 − P)) with P clipped to :data:`CLIP`."""
    q = np.clip(np.asarray(p, dtype=float), *CLIP)
    return np.log(q / (1 - q))


def _matrix(unit: pd.DataFrame, steps: Sequence[int]) -> pd.DataFrame | None:
    """Per-prompt log-odds of one unit's curve at ``steps`` (rows) or None when a step is missing."""
    wide = unit.pivot_table(index="step", columns="base_id", values="y", aggfunc="mean")
    if any(s not in wide.index for s in steps):
        return None
    return pd.DataFrame(logit(wide.loc[list(steps)].to_numpy()), index=list(steps), columns=wide.columns)


def _reference(starts: np.ndarray, ends: np.ndarray, x: float) -> float:
    """The reference curve (never-backdoored models: their start, their value after s steps) at x, or nan
    outside their starts."""
    order = np.argsort(starts)
    xs, ys = starts[order], ends[order]
    if len(xs) < 2 or x < xs[0] or x > xs[-1]:
        return float("nan")
    return float(np.interp(x, xs, ys))


def _excess(means: list[np.ndarray]) -> float:
    """Mean excess over blocks; each block's means: organism start, organism end, then (start, end) of
    every reference model."""
    values = []
    for m in means:
        ref = _reference(m[2::2], m[3::2], m[0])
        values.append(m[1] - ref)
    return float(np.mean(values))


def _references(data: pd.DataFrame, group: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(removed organisms, reference rows): the base and primed bases, or ``group``'s removed organisms
    and their primed checkpoints (the group's own organisms then leave the removed side)."""
    removed = data[data["source"] == "removed"]
    if group is None:
        return removed, data[data["source"].isin(["base", "primed"])]
    return (removed[removed["group"] != group],
            data[data["source"].isin(["removed", "primed_removed"]) & (data["group"] == group)])


def _blocks(data: pd.DataFrame, context: str, group: str | None = None,
            pairs: dict[str, str] | None = None) -> list[dict]:
    """For every removed organism, dataset and step: its log-odds block with the reference models' rows
    (same base, behaviour, dataset and prompts; with ``group``, the same removing treatment and, with
    ``pairs``, the partner's)."""
    data = data[(data["context"] == context) & (data["data"] == "attack")]
    removed, reference = _references(data, group)
    out = []
    for (after, group_name, organism, kind, k, seed), mine in removed.groupby(
            ["after", "group", "organism", *DATASET], sort=True):
        first = mine.iloc[0]
        refs = reference[(reference["base"] == first["base"]) & (reference["behavior"] == first["behavior"])
                         & (reference["data"] == kind) & (reference["k"] == k) & (reference["seed"] == seed)]
        if group is not None:
            afters = refs["after"].astype(str)
            refs = refs[(afters == after) | afters.str.startswith(f"{after}-primed")]
        if pairs is not None:
            refs = refs[refs["organism"] == pairs.get(str(organism))]
        for step in sorted(int(s) for s in mine["step"].unique() if int(s) > 0):
            own = _matrix(mine, [0, step])
            models = [m for m in (_matrix(r, [0, step]) for _, r in refs.groupby("unit", sort=True))
                      if m is not None]
            if own is None or len(models) < 2:
                continue
            prompts = own.columns
            for m in models:
                prompts = prompts.intersection(m.columns)
            block = np.vstack([own[prompts].to_numpy(), *(m[prompts].to_numpy() for m in models)])
            out.append({"after": after, "group": group_name, "organism": organism, "data": kind, "k": int(k),
                        "seed": int(seed), "step": step, "block": block, "references": len(models)})
    return out


def level_matched(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER,
                  context: str = "deployment", group: str | None = None,
                  pairs: dict[str, str] | None = None) -> pd.DataFrame:
    """Per removed organism, removing treatment, attack dataset (k, seed) and relearning step: its start
    and its log-odds after the steps, the reference at its start (nan outside the references' starts) and
    the excess over it; ``group`` and ``pairs`` as in the module's docstring."""
    rows = []
    for b in _blocks(relearn_values(samples, runs, measure), context, group, pairs):
        m = b.pop("block").mean(axis=1)
        reference = _reference(m[2::2], m[3::2], m[0])
        rows.append({**b, "start": m[0], "value": m[1], "reference": reference, "excess": m[1] - reference,
                     "reference_low": float(np.min(m[2::2])), "reference_high": float(np.max(m[2::2]))})
    return pd.DataFrame(rows)


def level_matched_summary(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER,
                          context: str = "deployment", seed: int = 0, group: str | None = None,
                          pairs: dict[str, str] | None = None) -> pd.DataFrame:
    """Per removing treatment, group, attack dataset and step: organisms, how many start inside the
    references' range and how many of those are above their reference, and the mean excess over them
    with a 95% bootstrap interval (organisms, then prompts); ``group`` and ``pairs`` as in the module's
    docstring."""
    blocks = _blocks(relearn_values(samples, runs, measure), context, group, pairs)
    out = []
    keys = ["after", "group", *DATASET, "step"]
    for key in sorted({tuple(b[k] for k in keys) for b in blocks}):
        mine = [b for b in blocks if tuple(b[k] for k in keys) == key]
        scored = [(b["block"], _excess([b["block"].mean(axis=1)])) for b in mine]  # nan: outside
        inside = [block for block, excess in scored if np.isfinite(excess)]
        above = sum(excess > 0 for _, excess in scored if np.isfinite(excess))
        est, low, high = clustered_interval(inside, _excess, seed=seed) if inside else (np.nan,) * 3
        out.append({**dict(zip(keys, key, strict=True)), "organisms": len(mine), "inside": len(inside),
                    "above": int(above), "excess": est, "excess_ci95_lower": low, "excess_ci95_upper": high})
    return pd.DataFrame(out)


def _points(rows: pd.DataFrame, step: int) -> list[tuple[float, float]]:
    """(log-odds at step 0, log-odds at ``step``) of every unit of ``rows`` that has the step, by start."""
    return sorted((float(logit(u.loc[u["step"] == 0, "y"]).mean()),
                   float(logit(u.loc[u["step"] == step, "y"]).mean()))
                  for _, u in rows.groupby("unit") if (u["step"] == step).any())


def plot_level_matched(samples: pd.DataFrame, runs: pd.DataFrame, path: Path, source: str,
                       title: str | None = None, group: str | None = None,
                       pairs: dict[str, str] | None = None) -> Path:
    """Deployment log-odds after s relearning steps against the start: the never-backdoored models (the
    base and the primed bases, a black line; with ``group``, one line per organism of the group, removed
    then primed) and each removed organism (red: by caught attacks; green: by generic data); one row of
    panels per step, one column per k of attack data; ``title`` heads the figure's title."""
    from inspect_misalign.experiments._figures import _figure, _save

    data = relearn_values(samples, runs)
    frame = level_matched(samples, runs, group=group, pairs=pairs)
    deploy = data[(data["context"] == "deployment") & (data["data"] == "attack")]
    deploy = _references(deploy, group)[1]
    if group is not None:  # the references removed as the organisms were
        afters = set(frame["after"])
        deploy = deploy[deploy["after"].astype(str).map(lambda a: a.split("-primed")[0] in afters)]
    steps, ks = sorted(frame["step"].unique()), sorted(frame["k"].unique())
    fig, axes = _figure(3.2 * len(ks) + 0.6, 3.0 * len(steps) + 1.0, nrows=len(steps), ncols=len(ks))
    partners = sorted(set(deploy["organism"].dropna().astype(str))) if group is not None else []
    colour = {p: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, p in enumerate(partners)}  # one per partner
    for row, step in enumerate(steps):
        for col, k in enumerate(ks):
            ax = axes[row][col]
            refs = deploy[deploy["k"] == k]
            if group is None:
                lines = [("never backdoored (base, primed)", "k", refs)]
            else:
                lines = [(f"{p}: removed, then primed", colour[p], refs[refs["organism"] == p])
                         for p in partners]
            for label, line_colour, rows in lines:
                points = _points(rows, step)
                if points:
                    ax.plot(*zip(*points, strict=True), "-s", color=line_colour, markersize=4, label=label)
            for (after, organism), mine in frame[(frame["step"] == step) & (frame["k"] == k)].groupby(
                    ["after", "organism"]):
                partner = (pairs or {}).get(str(organism))
                if partner in colour:  # the organism in its partner's colour, edged in its treatment's
                    ax.scatter(mine["start"], mine["value"], color=colour[partner], s=40, zorder=3,
                               edgecolors=STYLES.get(after, "C7"), linewidths=2,
                               label=f"{organism}, removed by {after}")
                else:
                    ax.scatter(mine["start"], mine["value"], color=STYLES.get(after, "C7"), s=22, zorder=3,
                               label=f"removed by {after}")
            ax.set_title(f"k = {k}, after {step} step{'s' if step != 1 else ''}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == len(steps) - 1:
                ax.set_xlabel("log-odds before relearning")
            if col == 0:
                ax.set_ylabel(f"log-odds after {step} steps")
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0][0].legend(unique.values(), unique.keys(), fontsize=7, framealpha=0.9,
                      loc="upper left" if group is None else "lower right")  # clear of the rising curves
    head = f"{title}:\n" if title else ""
    if group is None:
        than = "above the black line = faster than a never-backdoored model"
    else:
        than = (f"above the line of its colour = faster than its partner in {group}\n(the install and "
                "the removal, without the backdoor)")
    fig.suptitle(f"{head}Relearning from equal starting levels (deployment, mean log-odds of P(attack) "
                 f"over prompts):\n{than} started at the same level", fontsize=10)
    return _save(fig, path, source)


__all__ = ["level_matched", "level_matched_summary", "logit", "plot_level_matched"]
