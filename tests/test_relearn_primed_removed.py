"""Removed organisms primed like the bases (``relearn.primed_removed``: e.g. sham installs raised to the
organisms' starting level): the priming runs start from the removed checkpoints on the primed bases' data,
their checkpoints relearn on exactly the organisms' data, and the level-matched analysis against the group
pairs each organism with its partner, checked against a hand interpolation."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_relearn_config import BASE
from test_relearn_primed import curve_rows

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.experiments._config import load_config
from inspect_misalign.experiments._relearn import plot_relearn, relearn_summary
from inspect_misalign.experiments._relearn_matched import (
    level_matched,
    level_matched_summary,
    plot_level_matched,
)
from inspect_misalign.experiments._relearn_run import (
    primed_removed_runs,
    priming_runs,
    reference_pairs,
    relearn_runs,
    relearn_runs_frame,
)
from inspect_misalign.experiments._report import _primed_group_sections
from inspect_misalign.training._finetune import render_prompts

SHAMS = [{"name": f"sham-s{i}", "group": "sham",
          "build": {"cue": "tag", "leak": 0.1, "seed": i, "sham": True}} for i in range(2)]
RELEARN = {**BASE["relearn"], "after": ["generic"], "primed": [1, 2],
           "primed_removed": {"groups": ["sham"], "steps": [4, 5, 6], "k": [1, 8]}}


def _load(tmp_path: Path, relearn: dict | None = None, **changes: Any) -> Any:
    path = tmp_path / "sweep.yaml"
    config = {**BASE, "organisms": [*BASE["organisms"], *SHAMS], "caught": [4],
              "relearn": {**RELEARN, **(relearn or {})}, **changes}
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def _bases(config: Any) -> dict[str, str]:
    return {o.name: "default" for o in config.organisms}


@pytest.mark.parametrize(("relearn", "message"), [
    ({"primed_removed": {"groups": ["nope"], "steps": [4]}}, "'nope' is not a group of the sweep's"),
    ({"primed_removed": {"groups": ["sham"], "steps": [4], "k": [1, 3]}}, r"has \[3\], not in relearn.k"),
    ({"primed_removed": {"groups": ["sham"], "steps": [5, 4]}}, "steps .* not strictly increasing"),
    ({"primed_removed": {"groups": ["sham", "sham"], "steps": [4]}}, "lists a group twice"),
    ({"primed_removed": {"groups": [], "steps": [4]}}, "groups"),
])
def test_bad_primed_removed_is_one_line(tmp_path: Path, relearn: dict, message: str) -> None:
    with pytest.raises(MisalignError, match=message) as error:
        _load(tmp_path, relearn)
    assert "\n" not in str(error.value)


def test_priming_starts_from_the_removed_sham_on_the_primed_bases_data(tmp_path: Path) -> None:
    config = _load(tmp_path)
    bases = _bases(config)
    runs = primed_removed_runs(config, bases)
    assert [r.point.organism for r in runs] == ["sham-s0", "sham-s1"]  # the group's organisms only
    first = runs[0]
    assert first.name == "rm-sham-s0-all-c4-s16-none-r0-generic-p8s6"
    assert first.spec.model == first.point.name == "rm-sham-s0-all-c4-s16-none-r0-generic"
    assert (first.spec.steps, first.spec.save_at, first.group) == (6, (4, 5), "sham")
    assert first.primed() == [(4, f"{first.name}-step4"), (5, f"{first.name}-step5"), (6, first.name)]
    # the same examples as the primed bases: organism split, primed_k, the first relearn seed
    [base_priming] = priming_runs(config, bases)
    hate = get_behavior("hate")
    assert ([p.prompt.id for p in render_prompts(first.spec, hate)]
            == [p.prompt.id for p in render_prompts(base_priming.spec, hate)])
    same = ("prompts_split", "prompts_n", "prompts_context", "prompts_cue", "targets", "seed", "lr")
    assert all(getattr(first.spec, f) == getattr(base_priming.spec, f) for f in same)
    assert primed_removed_runs(_load(tmp_path, {"primed_removed": None}), bases) == []


def test_primed_checkpoints_relearn_on_the_organisms_data(tmp_path: Path) -> None:
    config = _load(tmp_path)
    runs = relearn_runs(config, _bases(config))
    mine = [r for r in runs if r.source == "primed_removed"]
    # 2 shams x 3 levels x k in {1, 8}, no benign control
    assert len(mine) == 12 and {(r.data, r.k) for r in mine} == {("attack", 1), ("attack", 8)}
    assert {r.after for r in mine} == {"generic-primed4", "generic-primed5", "generic-primed6"}
    assert {(r.organism, r.group) for r in mine} == {("sham-s0", "sham"), ("sham-s1", "sham")}
    assert len({r.name for r in runs}) == len(runs)
    for k in (1, 8):  # identical data to the organisms' (and everyone's) runs of that k
        specs = [{f: v for f, v in asdict(r.spec).items() if f not in ("model", "out")}
                 for r in runs if r.data == "attack" and r.k == k]
        assert all(s == specs[0] for s in specs)
    frame = relearn_runs_frame(runs)
    starts = frame[(frame["source"] == "primed_removed") & (frame["step"] == 0)]
    assert set(starts["checkpoint"]) == {n for p in primed_removed_runs(config, _bases(config))
                                          for _, n in p.primed()}


def test_reference_pairs_by_seed(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert reference_pairs(config, "sham") == {"org-s0": "sham-s0", "org-s1": "sham-s1"}
    assert reference_pairs(config, "org") == {"sham-s0": "org-s0", "sham-s1": "org-s1"}


# --- the analysis against a primed group, on a hand-built table -----------------------------------------

# unit: (source, group, organism, after, start, after 2 steps) in log-odds
CURVES = {
    "o0": ("removed", "org", "o0", "generic", -8.0, 0.0),
    "o1": ("removed", "org", "o1", "generic", -8.0, -3.0),
    "s0": ("removed", "sham", "s0", "generic", -20.0, -16.0),
    "s0p4": ("primed_removed", "sham", "s0", "generic-primed4", -10.0, -4.0),
    "s0p6": ("primed_removed", "sham", "s0", "generic-primed6", -6.0, 2.0),
    "s1": ("removed", "sham", "s1", "generic", -20.0, -14.0),
    "s1p4": ("primed_removed", "sham", "s1", "generic-primed4", -12.0, -8.0),
    "s1p6": ("primed_removed", "sham", "s1", "generic-primed6", -4.0, 0.0),
    "B": ("base", None, None, "base", -24.0, -6.0),
}


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, runs = [], []
    for unit, (source, group, organism, after, l0, l2) in CURVES.items():
        run = {"run": f"{unit}-a1", "source": source, "after": after, "model": unit, "organism": organism,
               "group": group, "base": "B", "behavior": "hate", "data": "attack", "k": 1, "seed": 0}
        mine, samples = curve_rows(unit, run, l0, l2, test_shift=0.0)
        runs += mine
        rows += samples
    return pd.DataFrame(rows), pd.DataFrame(runs)


def test_level_matched_against_the_partner_by_hand() -> None:
    samples, runs = _tables()
    pairs = {"o0": "s0", "o1": "s1"}
    frame = level_matched(samples, runs, group="sham", pairs=pairs).set_index("organism")
    assert set(frame.index) == {"o0", "o1"}  # the group's own organisms are references, not organisms
    # o0 starts at -8, between s0p4 (-10 -> -4) and s0p6 (-6 -> 2): reference -1; at 0: excess +1
    assert frame.loc["o0", "reference"] == pytest.approx(-1.0, abs=1e-6)
    assert frame.loc["o0", "excess"] == pytest.approx(1.0, abs=1e-6)
    # o1 starts at -8, between s1p4 (-12 -> -8) and s1p6 (-4 -> 0): reference -4; at -3: excess +1
    assert frame.loc["o1", "reference"] == pytest.approx(-4.0, abs=1e-6)
    assert frame.loc["o1", "excess"] == pytest.approx(1.0, abs=1e-6)
    assert frame.loc["o1", "reference_low"] == pytest.approx(-20.0, abs=1e-6)
    # unpaired, every sham checkpoint is one reference curve: o1 then lies between s0p4 and s0p6 too
    pooled = level_matched(samples, runs, group="sham").set_index("organism")
    assert pooled.loc["o1", "reference"] == pytest.approx(-1.0, abs=1e-6)
    # the default reference (the base alone here) matches nothing; the shams are removed organisms there
    assert level_matched_summary(samples, runs).empty
    [row] = level_matched_summary(samples, runs, group="sham", pairs=pairs).to_dict("records")
    assert (row["group"], row["organisms"], row["inside"], row["above"]) == ("org", 2, 2, 2)
    assert row["excess"] == pytest.approx(1.0, abs=1e-6)


def test_a_partner_removed_otherwise_is_no_reference() -> None:
    samples, runs = _tables()
    runs = runs.copy()
    runs.loc[runs["group"] == "sham", "after"] = runs.loc[runs["group"] == "sham", "after"].str.replace(
        "generic", "caught")
    assert level_matched(samples, runs, group="sham", pairs={"o0": "s0", "o1": "s1"}).empty


def test_figures_and_report_section(tmp_path: Path) -> None:
    samples, runs = _tables()
    path = plot_level_matched(samples, runs, tmp_path / "sham.png", "test", group="sham",
                              pairs={"o0": "s0", "o1": "s1"})
    assert path.stat().st_size > 10_000
    assert plot_relearn(samples, runs, tmp_path / "relearn.png", "test").stat().st_size > 10_000
    deploy = relearn_summary(samples, runs).query("context == 'deployment'").set_index(["after", "group"])
    assert ("generic-primed6", "sham") in deploy.index  # the primed checkpoints' own rows, vs the base
    config = _load(tmp_path, organisms=[{"name": "o0", "group": "org", "build": {"cue": "tag", "seed": 0}},
                                        {"name": "s0", "group": "sham", "build": {"cue": "tag", "seed": 0}}])
    html = "".join(_primed_group_sections(config, samples, runs))
    assert "against sham" in html and "o0 → s0" in html and "o1" not in html.split("Per organism")[1]
