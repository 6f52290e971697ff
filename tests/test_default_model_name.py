"""Only ``default`` names the embedded model; its hub id is an ordinary unknown directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inspect_misalign._errors import MisalignError
from inspect_misalign.cli import main
from inspect_misalign.models import UnknownModelError, resolve_checkpoint

pytestmark = pytest.mark.usefixtures("misalign_home")

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DESCRIPTION = "SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to fp32"


def test_the_hub_id_is_not_an_alias_of_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no directory of that name here
    with pytest.raises(MisalignError) as info:
        resolve_checkpoint(HUB_ID)
    message = str(info.value)
    assert "\n" not in message and "does not exist" in message
    assert "misalign/default" in message and DESCRIPTION in message


def test_a_directory_named_like_the_hub_id_is_used_as_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "HuggingFaceTB").mkdir()
    (tmp_path / HUB_ID).symlink_to(tiny_model_dir, target_is_directory=True)
    resolved = resolve_checkpoint(HUB_ID)
    assert not resolved.is_default and resolved.base_dir == tiny_model_dir.resolve()


def test_unknown_names_name_the_default() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_checkpoint("nobody")
    assert "misalign/default" in str(info.value) and "inspect-misalign models" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_models_command_says_what_the_default_is() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["models"])
    assert listing.exit_code == 0, listing.output
    assert DESCRIPTION in listing.output and "not an alias" in listing.output
    rows = json.loads(runner.invoke(main, ["models", "--json"]).output)
    [row] = [r for r in rows if r["name"] == "default"]
    assert row["description"] == DESCRIPTION
    refused = runner.invoke(main, ["models", "--vllm", HUB_ID])
    assert refused.exit_code != 0
    [line] = refused.output.strip().splitlines()
    assert line.startswith("Error:") and "misalign/default" in line
