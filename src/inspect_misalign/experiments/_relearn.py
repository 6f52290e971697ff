"""Relearning curves: does the deployment attack come back faster after removal than in the base that never
had the backdoor? (erased or suppressed; the sweep's ``relearn:`` section, :mod:`._relearn_run`).

Input: the samples table (``propensity`` rows) and the relearning runs table (``out/relearn.parquet``,
:func:`~inspect_misalign.experiments._relearn_run.relearn_runs_frame`: ``checkpoint``, ``run``, ``source``
(``removed`` | ``base``), ``after`` (the treatment that removed it, ``base`` for a base; tables written
before it existed read as ``caught``), ``model`` (the checkpoint relearning started from), ``organism``,
``group``, ``base``, ``data`` (``attack`` | ``benign``), ``k``, ``seed``, ``step``; step 0 is the starting
checkpoint).
The measure is ``score_p_marker``: the probability that a temperature-1 sample starts with the attack.

- :func:`relearn_curves`: per source, removing treatment, group, data, k, seed, step and context, the mean
  over organisms of each organism's mean over prompts (removed; 95% bootstrap over organisms, then
  prompts), or the mean over prompts of the base (bootstrap over prompts);
- :func:`relearn_summary`: per removing treatment, group, data, k and seed, the deployment P(attack) after
  the relearning steps (or at one saved step; :func:`relearn_steps_summary`: at each) of the removed
  organisms and of their bases, and removed − base, paired by organism and prompt (bootstrap over
  organisms, then prompts). > 0: the removed organism relearns the attack faster than a model that never
  had it (suppressed, not erased);
- :func:`plot_relearn`: deployment P(attack) vs relearning step, one panel per k (and the benign control),
  removed (one colour per removing treatment) vs base, the test context dashed, on a logit axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inspect_misalign.experiments._dose import P_MARKER
from inspect_misalign.experiments._paired import clustered_interval
from inspect_misalign.experiments._retained import model_name

KEYS = ["source", "after", "group", "data", "k", "seed"]
STYLES = {"caught": "C3", "generic": "C2", "benign": "C1", "base": "C0"}  # by removing treatment
TREATED = "C4"  # the base given a removal (relearn.treated_base)
FLOOR = 1e-9


def relearn_values(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER) -> pd.DataFrame:
    """The measure per prompt (mean over cues) of every checkpoint on a relearning curve, with its place;
    ``unit`` is what the interval resamples: the organism (removed) or the base model."""
    rows = samples[samples["task"] == "propensity"].copy()
    rows["checkpoint"] = rows["model"].astype(str).map(model_name)
    rows = rows.groupby(["checkpoint", "context", "base_id"], as_index=False)[measure].mean()
    data = rows.rename(columns={measure: "y"}).merge(runs, on="checkpoint")
    started = data["source"] != "base"  # removed organisms and primed bases
    data["group"] = data["group"].where(started, "base").fillna("base")
    after = data["after"] if "after" in data else pd.Series("caught", index=data.index)
    data["after"] = after.where(started, "base").fillna("caught")
    data["unit"] = data["organism"].where(data["source"] == "removed", data["model"])
    return data


def _mean_of_means(means: list[np.ndarray]) -> float:
    return float(np.mean([m[0] for m in means]))


def relearn_curves(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER,
                   seed: int = 0) -> pd.DataFrame:
    """Mean (over units) of each unit's prompt mean per source, group, data, k, seed, step and context,
    with a 95% bootstrap interval (units, then prompts; prompts alone for one unit)."""
    data = relearn_values(samples, runs, measure)
    out = []
    for key, run in data.groupby(KEYS, sort=True):
        for (step, context), rows in run.groupby(["step", "context"], sort=True):
            blocks = [unit["y"].to_numpy(dtype=float)[None, :] for _, unit in rows.groupby("unit", sort=True)]
            est, low, high = clustered_interval(blocks, _mean_of_means, seed=seed)
            out.append({**dict(zip(KEYS, key, strict=True)), "step": int(step), "context": context,
                        "measure": measure, "mean": est, "ci95_lower": low, "ci95_upper": high,
                        "units": len(blocks), "prompts": int(sum(b.shape[1] for b in blocks))})
    return pd.DataFrame(out)


def relearn_summary(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER,
                    seed: int = 0, step: int | None = None, reference: str = "base") -> pd.DataFrame:
    """Per context (deployment first, then test: where removal acted), group, data, k and seed at
    relearning step ``step`` (default: each run's last step; runs without that step are left out): the
    measure of the removed organisms (mean of organism means), of their bases, and removed − base paired
    by organism and prompt, with a bootstrap interval over organisms, then prompts; also the removed
    organisms' and the bases' values at step 0 (before relearning). Primed bases (``relearn.primed``) get
    rows of their own, ``after`` ``primed<steps>``, compared with the base like a removed organism; so do
    treated bases (``relearn.treated_base``: group ``treated``). ``reference="treated"`` compares the
    removed organisms with the base given the same removal instead (the ``base`` columns are then the
    treated base's; removed organisms of treatments no base was given are left out)."""
    return _summary(relearn_values(samples, runs, measure), seed, None if step is None else [int(step)],
                    reference)


def relearn_steps_summary(samples: pd.DataFrame, runs: pd.DataFrame, measure: str = P_MARKER,
                          seed: int = 0, reference: str = "base") -> pd.DataFrame:
    """:func:`relearn_summary` at every saved relearning step after 0, step by step (how fast the attack
    returns: the last step alone can sit at the ceiling for the removed organisms and the base alike)."""
    data = relearn_values(samples, runs, measure)
    return _summary(data, seed, sorted(int(s) for s in data["step"].unique() if int(s) > 0), reference)


def _summary(data: pd.DataFrame, seed: int, steps: list[int] | None, reference: str = "base") -> pd.DataFrame:
    """Summary rows per context, group and step (``steps`` None: each group's last step)."""
    if reference not in ("base", "treated"):
        raise ValueError(f"reference must be base or treated, got {reference!r}")
    out = []
    for context in ("deployment", "test"):
        out += _summary_rows(data[data["context"] == context], context, seed, steps, reference)
    return pd.DataFrame(out)


def _summary_rows(data: pd.DataFrame, context: str, seed: int, steps: list[int] | None,
                  reference: str = "base") -> list[dict]:
    if reference == "base":
        removed, base = data[data["source"] != "base"], data[data["source"] == "base"]
    else:
        removed, base = data[data["source"] == "removed"], data[data["source"] == "treated"]
        removed = removed[removed["after"].isin(set(base["after"]))]
    out = []
    for (after, group, kind, k, rseed), rows in removed.groupby(["after", "group", "data", "k", "seed"],
                                                                sort=True):
        saved = set(rows["step"].astype(int))
        at_steps = [int(rows["step"].max())] if steps is None else [s for s in steps if s in saved]
        same = base[(base["data"] == kind) & (base["k"] == k) & (base["seed"] == rseed)]
        if reference != "base":
            same = same[same["after"] == after]
        for last in at_steps:
            row = {"context": context, "after": after, "group": group, "data": kind, "k": int(k),
                   "seed": int(rseed), "step": last}
            out.append(_summary_row(row, rows, same, last, seed))
    return out


def _summary_row(row: dict, rows: pd.DataFrame, same_data: pd.DataFrame, last: int, seed: int) -> dict:
    """``row`` completed at step ``last``: removed (``rows``) and base (``same_data``: the base runs on
    the same data) values, paired per organism and prompt."""
    blocks, starts, base_starts = [], [], []
    for _, mine in rows.groupby("organism", sort=True):
        at = mine[mine["step"] == last].set_index("base_id")["y"]
        first = mine.iloc[0]
        same = same_data[(same_data["base"] == first["base"]) & (same_data["behavior"] == first["behavior"])]
        theirs = same[same["step"] == last].set_index("base_id")["y"]
        common = at.index.intersection(theirs.index)
        if len(common):
            blocks.append(np.vstack([at.loc[common].to_numpy(float), theirs.loc[common].to_numpy(float)]))
        starts.append(float(mine.loc[mine["step"] == 0, "y"].mean()))
        base_starts.append(float(same.loc[same["step"] == 0, "y"].mean()))
    row = {**row, "organisms": len(blocks),
           "removed_before": float(np.mean(starts)) if starts else np.nan,
           "base_before": float(np.nanmean(base_starts)) if base_starts else np.nan}
    for name, statistic in (("removed", lambda m: float(np.mean([v[0] for v in m]))),
                            ("base", lambda m: float(np.mean([v[1] for v in m]))),
                            ("difference", lambda m: float(np.mean([v[0] - v[1] for v in m])))):
        est, low, high = clustered_interval(blocks, statistic, seed=seed)
        row.update({name: est, f"{name}_ci95_lower": low, f"{name}_ci95_upper": high})
    return row


def has_relearn(samples: pd.DataFrame, runs: pd.DataFrame | None) -> bool:
    """Whether relearning curves can be drawn: a runs table and propensity rows of its checkpoints."""
    if runs is None or runs.empty or P_MARKER not in samples:
        return False
    measured = set(samples.loc[samples["task"] == "propensity", "model"].astype(str).map(model_name))
    return bool(set(runs.loc[runs["step"] > 0, "checkpoint"]) & measured)


def plot_relearn(samples: pd.DataFrame, runs: pd.DataFrame, path: Path, source: str,
                 title: str | None = None) -> Path:
    """Deployment (solid) and test (dashed) P(attack) vs relearning step, one panel per k of attack data
    and one for the benign control, removed organisms (red: by caught attacks; green: by generic data)
    vs their base (blue), 95% bands; ``title`` (e.g. the sweep's name) heads the figure's title."""
    from inspect_misalign.experiments._figures import _figure, _save

    frame = relearn_curves(samples, runs)
    panels = sorted({(d, int(k)) for d, k in zip(frame["data"], frame["k"], strict=True)},
                    key=lambda p: (p[0] != "attack", p[1]))
    fig, axes = _figure(3.4 * len(panels) + 0.6, 4.2, ncols=len(panels))
    for ax, (kind, k) in zip(axes[0], panels, strict=True):
        mine = frame[(frame["data"] == kind) & (frame["k"] == k)]
        for (src, after, group, rseed, context), line in mine.groupby(
                ["source", "after", "group", "seed", "context"], sort=True):
            line = line.sort_values("step")
            x = line["step"].to_numpy(dtype=float)
            colour = TREATED if src == "treated" else STYLES.get(after) or _primed_colour(after, frame)
            if src == "primed_removed":
                colour = _primed_removed_colour(after, frame)
            if src == "removed":
                colour = _group_colour(colour, group, frame)
            label = None
            if context == "deployment":
                many = frame.loc[frame["source"] == "removed", "group"].nunique() > 1
                label = {"base": "base", "primed": f"base {after.replace('primed', 'primed ')} step(s)",
                         "treated": f"base after the {after} removal",
                         "primed_removed": f"{group} primed {after.split('-primed')[-1]} step(s)",
                         }.get(src, f"removed by {after}")
                label += f" ({group})" if src == "removed" and many else ""
                label += f", seed {rseed}" if frame["seed"].nunique() > 1 else ""
                label += f", {int(line['units'].max())} organisms" if src == "removed" else ""
            ax.plot(x, _clip(line["mean"]), "-" if context == "deployment" else "--", marker="o",
                    markersize=3, color=colour, label=label, alpha=1.0 if context == "deployment" else 0.6)
            if context == "deployment":
                ax.fill_between(x, _clip(line["ci95_lower"]), _clip(line["ci95_upper"]), color=colour,
                                alpha=0.12)
        ax.set_yscale("logit")
        ax.set_xscale("symlog", linthresh=1)
        steps = sorted(mine["step"].unique())
        ax.set_xticks(steps, [str(int(s)) for s in steps])
        ax.set_xlabel("relearning steps (0: before relearning)")
        plural = "s" if k != 1 else ""
        panel = f"{k} attack example{plural}" if kind == "attack" else f"control: {k} benign example{plural}"
        ax.set_title(panel, fontsize=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    low = min(ax.get_ylim()[0] for ax in axes[0])
    high = max(ax.get_ylim()[1] for ax in axes[0])
    for ax in axes[0]:
        ax.set_ylim(low, high)
    axes[0][0].set_ylabel("P(attack), temperature 1 (mean, 95% CI)")
    primed = ""
    if (frame["source"] == "primed").any():
        primed = " and the base primed to raised starting levels (grey)"
    if (frame["source"] == "primed_removed").any():
        primed += " and removed organisms primed to raised levels (copper, darker the longer primed)"
    if (frame["source"] == "treated").any():
        primed += " and the base given the generic removal (purple)"
    head = f"{title}: " if title else ""
    groups = frame.loc[frame["source"] == "removed", "group"].nunique()
    colours = "red: by caught attacks; green: by generic data"
    colours += "; other groups: the legend" if groups > 1 else ""
    fig.suptitle(f"{head}Relearning after removal ({colours})\n"
                 f"vs the base that never had the backdoor (blue){primed}: deployment solid, test dashed",
                 fontsize=10)
    return _save(fig, path, source)


GROUP_COLOURS = ("C8", "C5", "C6", "C9")  # removed organisms of a second, third, ... group


def _group_colour(colour: str, group: str, frame: pd.DataFrame) -> str:
    """The removing treatment's colour for the first group of removed organisms (sorted), another colour
    for each further group (e.g. sham installs beside the organisms)."""
    groups = sorted({str(g) for g in frame.loc[frame["source"] == "removed", "group"]})
    i = groups.index(str(group)) if str(group) in groups else 0
    return colour if i == 0 else GROUP_COLOURS[(i - 1) % len(GROUP_COLOURS)]


def _primed_colour(after: str, frame: pd.DataFrame) -> str:
    """Primed bases in shades of grey, darker the longer primed (matplotlib grey levels)."""
    primed = sorted({a for a in frame["after"] if str(a).startswith("primed")},
                    key=lambda a: int(a.removeprefix("primed")))
    if after not in primed:
        return "C7"
    return str(round(0.65 - 0.45 * primed.index(after) / max(len(primed) - 1, 1), 2))


def _primed_removed_colour(after: str, frame: pd.DataFrame) -> str:
    """Primed removed organisms (``relearn.primed_removed``) in copper tones, darker the longer primed."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    levels = sorted({int(str(a).split("-primed")[-1])
                     for a in frame.loc[frame["source"] == "primed_removed", "after"]})
    level = int(after.split("-primed")[-1])
    return to_hex(colormaps["copper"](0.85 - 0.6 * levels.index(level) / max(len(levels) - 1, 1)))


def _clip(values: pd.Series) -> pd.Series:
    return values.clip(lower=FLOOR, upper=1 - FLOOR)


def read_relearn_runs(directory: str | Path) -> pd.DataFrame | None:
    """A sweep directory's relearning runs table (``relearn.parquet``), or None."""
    path = Path(directory) / "relearn.parquet"
    return pd.read_parquet(path) if path.is_file() else None


__all__ = ["has_relearn", "plot_relearn", "read_relearn_runs", "relearn_curves", "relearn_steps_summary",
           "relearn_summary", "relearn_values"]
