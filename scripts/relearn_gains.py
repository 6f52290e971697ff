"""Log-odds of deployment P(attack) gained since the start of relearning, per source, group, k and step.

    python scripts/relearn_gains.py CONFIG [SWEEP_DIR]     (e.g. family_tag_relearn_treated)

Reads the sweep's ``samples.parquet`` (default directory: the config's ``out``) and places each checkpoint
with the config's relearning runs: the logit of each model's prompt-mean P(attack) (clipped as the
level-matched analysis clips, ``experiments._relearn_matched.CLIP``) minus its value at step 0, averaged
over the models of a group (docs/results.md section 9, "A sham install"). A scale on which a start far
below another's is not an advantage.
"""

from __future__ import annotations

import sys

import pandas as pd

from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._relearn import relearn_values
from inspect_misalign.experiments._relearn_matched import logit
from inspect_misalign.experiments._relearn_run import relearn_runs, relearn_runs_frame


def gains(samples: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean log-odds gained since step 0 per source, group and k (columns: steps), deployment, attack."""
    data = relearn_values(samples, runs)
    data = data[(data["context"] == "deployment") & (data["data"] == "attack")]
    p = data.groupby(["source", "group", "unit", "k", "step"])["y"].mean()
    odds = pd.Series(logit(p), index=p.index).unstack("step")
    return odds.sub(odds[0], axis=0).groupby(["source", "group", "k"]).mean()


def main(argv: list[str]) -> None:
    """Print the gains table and each group's starting log-odds."""
    config = load_config(argv[0])
    out = argv[1] if len(argv) > 1 else config.out_dir
    samples = pd.read_parquet(f"{out}/samples.parquet")
    runs = relearn_runs_frame(relearn_runs(config))
    print(gains(samples, runs).round(2).to_string())
    data = relearn_values(samples, runs)
    start = data[(data["context"] == "deployment") & (data["step"] == 0)]
    p = start.groupby(["source", "group", "unit"])["y"].mean()
    odds = pd.Series(logit(p), index=p.index)
    print("log-odds at step 0:", odds.groupby(["source", "group"]).mean().round(2).to_dict())


if __name__ == "__main__":
    if not sys.argv[1:]:
        sys.exit("usage: python scripts/relearn_gains.py CONFIG [SWEEP_DIR]")
    main(sys.argv[1:])
