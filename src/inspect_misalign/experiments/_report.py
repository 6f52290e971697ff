"""``inspect-misalign report``: one self-contained HTML file (figures inlined) for a sweep directory."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from inspect_misalign import __version__
from inspect_misalign._atomic import atomic_write_text
from inspect_misalign._errors import MisalignError
from inspect_misalign.experiments._config import SweepConfig

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:12px}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#666;font-size:13px}
"""

SUMMARY_COLUMNS = ["checkpoint", "cue", "train_on", "caught", "steps", "defense", "seed", "n", "rate",
                   "ci95_lower", "ci95_upper", "retained", "retained_ci95_lower", "retained_ci95_upper"]


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f'<figcaption class="note">{html.escape(path.name)}</figcaption></figure>')


def _frame(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0)


def render_report(config: SweepConfig, table: pd.DataFrame, figures: list[Path]) -> str:
    """The report's HTML text."""
    out = config.out_dir
    deploy = table[(table["task"] == "deployment_attacks") & (table["stage"] == "trained")]
    test_after = table[(table["task"] == "test_attacks") & (table["stage"] == "trained")]
    before = table[table["stage"] == "organism"]
    before = before[before["task"].isin(["test_attacks", "deployment_attacks", "distinguishability"])]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>inspect-misalign sweep {html.escape(config.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Sweep <code>{html.escape(config.name)}</code></h1>",
        f"<p class='note'>inspect-misalign {__version__}, written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"Data: <code>{html.escape(str(out / 'results.parquet'))}</code>. Browse every sample with "
        f"<code>inspect view --log-dir {html.escape(str(out / 'logs'))}</code>.</p>",
        "<h2>Question</h2><p>Does training against the attacks caught in testing remove them in "
        "deployment, or does the model only learn to hide them? <b>Retained misalignment</b> is a trained "
        "checkpoint's deployment attack rate divided by its organism's (1: nothing removed in deployment); "
        "the proposal predicts it grows as deployment gets harder to tell apart from testing.</p>",
        "<h2>Figures</h2>", *(_img(p) for p in figures if p.is_file()),
        "<h2>Organisms before training</h2>",
        _frame(before[["checkpoint", "task", "cue", "context", "n", "rate", "ci95_lower", "ci95_upper",
                       "auc"]]),
        "<h2>Deployment attacks after training</h2>",
        _frame(deploy[[c for c in SUMMARY_COLUMNS if c in deploy]]),
        "<h2>Test attacks after training</h2>",
        _frame(test_after[[c for c in SUMMARY_COLUMNS if c in test_after and not c.startswith("retained")]]),
        "<h2>Commands</h2><pre>"
        + html.escape(f"inspect-misalign sweep {out / 'config.yaml'}   # re-run: resumes\n"
                      f"inspect-misalign report {out}\n"
                      f"inspect view --log-dir {out / 'logs'}") + "</pre>",
        "<h2>Config</h2><pre>" + html.escape(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        + "</pre>",
        "<h2>Lineage</h2>",
        _frame(table.drop_duplicates("checkpoint")[
            ["checkpoint", "model", "stage", "organism", "train_on", "caught", "steps", "defense", "seed"]]),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(config: SweepConfig, table: pd.DataFrame, figures: list[Path], path: Path) -> Path:
    """Write the HTML report atomically."""
    atomic_write_text(path, render_report(config, table, figures))
    return path


def report_dir(directory: Path) -> Path:
    """Rebuild figures and the report of a finished sweep directory (its config.yaml + results)."""
    from inspect_misalign.experiments._config import load_config
    from inspect_misalign.experiments._figures import sweep_figures

    config_path, results = directory / "config.yaml", directory / "results.parquet"
    if not config_path.is_file() or not results.is_file():
        raise MisalignError(f"{directory} is not a finished sweep directory (needs config.yaml and "
                            "results.parquet); run inspect-misalign sweep first")
    config = load_config(config_path, overrides={"out": str(directory)})
    table = pd.read_parquet(results)
    figures = sweep_figures(table, config, directory / "figures")
    return write_report(config, table, figures, directory / "report.html")
