"""Install vs remove on hand-built samples: install steps from the config, the table's stopping steps and
retention per install length (checked by hand), and the figure."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from inspect_misalign.experiments._config import SweepConfig
from inspect_misalign.experiments._install import (
    group_steps,
    has_install,
    install_steps,
    install_table,
    plot_install,
)

PROMPTS = ["p0", "p1"]


def _rows(checkpoint: str, context: str, p: float, logodds: float) -> list[dict]:
    return [{"model": f"misalign/{checkpoint}", "task": "propensity", "cue": "tag", "context": context,
             "base_id": b, "value": logodds, "score_p_marker": p} for b in PROMPTS]


# organism -> (group, test P at steps 0, 2, 4, deployment P at steps 0, 2, 4)
ORGANISMS = {
    "short-a": ("short", (0.1, 0.005, 0.001), (0.99, 0.9, 0.5)),
    "short-b": ("short", (0.1, 0.02, 0.004), (0.99, 0.95, 0.7)),
    "long-a": ("long", (0.1, 0.05, 0.008), (0.999, 0.99, 0.98)),
    "long-b": ("long", (0.1, 0.05, 0.03), (0.999, 0.999, 0.99)),
}


def _table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, runs = [], []
    for organism, (group, test, deploy) in ORGANISMS.items():
        for step, tp, dp in zip((0, 2, 4), test, deploy, strict=True):
            name = organism if step == 0 else f"{organism}-s{step}"
            rows += _rows(name, "test", tp, math.log(tp))
            rows += _rows(name, "deployment", dp, math.log(dp))
            runs.append({"checkpoint": name, "organism": organism, "group": group,
                         "treatment": None if step == 0 else "caught", "caught": None if step == 0 else 16,
                         "step": step})
    return pd.DataFrame(rows), pd.DataFrame(runs)


INSTALL = {"short-a": 80, "short-b": 80, "long-a": 320, "long-b": 320}


def test_install_steps_come_from_the_build_options_of_unregistered_organisms(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INSPECT_MISALIGN_HOME", str(tmp_path))
    config = SweepConfig(name="x", cues=["tag"], caught=[4], steps=[4], organisms=[
        {"name": "org-short", "build": {"cue": "tag", "train": {"steps": 80}}},
        {"name": "org-long", "build": {"cue": "tag", "train": {"steps": 320}}},
        {"name": "org-default", "build": {"cue": "tag"}},
    ])
    assert install_steps(config) == {"org-short": 80, "org-long": 320}


def test_groups_span_two_install_lengths() -> None:
    _, runs = _table()
    assert group_steps(runs, INSTALL) == {"short": 80, "long": 320}
    assert has_install(runs, INSTALL)
    assert not has_install(runs, dict.fromkeys(INSTALL, 80))
    mixed = {**INSTALL, "long-b": 160}  # a group whose organisms differ has no one install length
    assert group_steps(runs, mixed) == {"short": 80}


def test_install_table_by_hand() -> None:
    samples, runs = _table()
    table = install_table(samples, runs, INSTALL, threshold=0.01).set_index("install_steps")
    assert list(table.index) == [80, 320]
    short, long = table.loc[80], table.loc[320]
    # short-a stops at step 2 (0.005), short-b at 4 (0.004); long-a at 4 (0.008), long-b never (0.03)
    assert short["stop_steps"] == "2, 4" and short["stopped"] == "2/2"
    assert long["stop_steps"] == "4, -" and long["stopped"] == "1/2"
    assert short["deploy_at"] == pytest.approx((0.9 + 0.7) / 2)
    assert short["retained_deploy"] == pytest.approx((0.9 / 0.99 + 0.7 / 0.99) / 2)
    # long-b never stopped: its deployment P at its last step (4) enters the mean
    assert long["deploy_at"] == pytest.approx((0.98 + 0.99) / 2)
    for row in (short, long):
        assert row["deploy_at_ci95_lower"] <= row["deploy_at"] <= row["deploy_at_ci95_upper"]


def test_install_figure_is_written(tmp_path) -> None:
    samples, runs = _table()
    path = plot_install(samples, runs, INSTALL, tmp_path / "install.png", "hand-built")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_shows_install_vs_remove_for_a_sweep_of_install_lengths(tmp_path, monkeypatch) -> None:
    from inspect_misalign.experiments._report import _install_section
    from inspect_misalign.experiments._sweep_table import runs_frame

    monkeypatch.setenv("INSPECT_MISALIGN_HOME", str(tmp_path))
    organisms = [{"name": name, "group": group, "build": {"cue": "tag", "train": {"steps": INSTALL[name]}}}
                 for name, (group, _, _) in ORGANISMS.items()]
    config = SweepConfig(name="inst", cues=["tag"], caught=[16], steps=[4], train={"save_at": [2]},
                         train_on=["all"], organisms=organisms)
    runs = runs_frame(config)
    rows = []
    for run in runs.itertuples():  # the hand-built values, under the sweep's own checkpoint names
        _, test, deploy = ORGANISMS[run.organism]
        index = (0, 2, 4).index(int(run.step))
        rows += _rows(run.checkpoint, "test", test[index], math.log(test[index]))
        rows += _rows(run.checkpoint, "deployment", deploy[index], math.log(deploy[index]))
    html = "".join(_install_section(config, pd.DataFrame(rows)))
    assert "Install vs remove" in html
    assert html.index(">80<") < html.index(">320<")  # ordered by install steps
    assert "2, 4" in html and "4, -" in html and "1/2" in html
    one_length = config.model_copy(update={"organisms": config.organisms[:2]})
    assert _install_section(one_length, pd.DataFrame(rows)) == []
