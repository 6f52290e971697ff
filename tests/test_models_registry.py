"""The checkpoint registry, name resolution and ``inspect-misalign models``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inspect_misalign.cli.models import command as models_command
from inspect_misalign.models import (
    UnknownModelError,
    list_models,
    read_manifest,
    register,
    resolve,
    resolve_checkpoint,
    unregister,
    update_metrics,
    vllm_model_name,
)
from inspect_misalign.models._checkpoints import MANIFEST_FILE, index_path

pytestmark = pytest.mark.usefixtures("misalign_home")


def test_register_resolve_list(tiny_model_dir: Path, misalign_home: Path) -> None:
    manifest = register(
        "organism", tiny_model_dir, parent="default", config={"lr": 1e-4}, metrics={"acc": 0.5}
    )
    assert manifest.adapter is False and manifest.path == str(tiny_model_dir.resolve())
    assert resolve("organism") == manifest
    assert [m.name for m in list_models()] == ["organism"]
    assert read_manifest(tiny_model_dir) == manifest
    assert (tiny_model_dir / MANIFEST_FILE).is_file()
    index = json.loads(index_path().read_text())
    assert index_path().parent == misalign_home and "organism" in index["models"]

    updated = update_metrics("organism", {"attack_rate": 0.25})
    assert updated.metrics == {"acc": 0.5, "attack_rate": 0.25}
    assert resolve("organism").metrics == updated.metrics
    assert read_manifest(tiny_model_dir).metrics == updated.metrics

    with pytest.raises(ValueError, match="already registered"):
        register("organism", tiny_model_dir)
    again = register("organism", tiny_model_dir, metrics={"acc": 1.0}, overwrite=True)
    assert again.metrics == {"acc": 1.0} and again.created == manifest.created

    unregister("organism")
    assert list_models() == []
    (tiny_model_dir / MANIFEST_FILE).unlink()


def test_bad_names(tiny_model_dir: Path) -> None:
    for name in ("default", "a/b", "", "-x", "nl\n", "x" * 101, "../../x"):
        with pytest.raises(ValueError) as err:
            register(name, tiny_model_dir)
        assert "\n" not in str(err.value)
    register("x" * 100, tiny_model_dir)  # the longest name allowed
    assert [m.name for m in list_models()] == ["x" * 100]
    unregister("x" * 100)
    (tiny_model_dir / MANIFEST_FILE).unlink()
    with pytest.raises(FileNotFoundError):
        register("missing", tiny_model_dir / "nope")


def test_unknown_name_error() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve("nobody")
    assert "inspect-misalign models" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnknownModelError, match="inspect-misalign models"):
        resolve_checkpoint("nobody")


def test_registered_adapter_resolves_to_base_plus_adapter(
    tiny_model_dir: Path, tiny_adapter_dirs: list[Path]
) -> None:
    register("tiny-base", tiny_model_dir)
    adapter = register("tiny-lora", tiny_adapter_dirs[0], base="tiny-base", parent="tiny-base")
    assert adapter.adapter is True
    resolved = resolve_checkpoint("tiny-lora")
    assert resolved.base_dir == tiny_model_dir.resolve()
    assert resolved.adapter_dir == tiny_adapter_dirs[0].resolve()
    # an adapter's base defaults to its adapter config's base_model_name_or_path
    auto = register("tiny-lora-2", tiny_adapter_dirs[1])
    assert auto.adapter and Path(auto.base or "").resolve() == tiny_model_dir.resolve()
    # registered adapter names also work as -M adapter=
    via_arg = resolve_checkpoint(str(tiny_model_dir), adapter="tiny-lora-2")
    assert via_arg.adapter_dir == tiny_adapter_dirs[1].resolve()
    assert vllm_model_name("tiny-lora") == (
        f"vllm/{tiny_model_dir.resolve()}:{tiny_adapter_dirs[0].resolve()}"
    )
    # the adapter directories hold only standard PEFT files plus the manifest
    names = {p.name for p in tiny_adapter_dirs[0].iterdir()}
    assert names <= {"adapter_config.json", "adapter_model.safetensors", "README.md", MANIFEST_FILE}
    for directory in tiny_adapter_dirs:
        (directory / MANIFEST_FILE).unlink()
    (tiny_model_dir / MANIFEST_FILE).unlink()


def test_models_command(tiny_model_dir: Path) -> None:
    register("listed", tiny_model_dir, metrics={"attack_rate": 0.125})
    runner = CliRunner()
    table = runner.invoke(models_command, [])
    assert table.exit_code == 0, table.output
    assert "listed" in table.output and "default" in table.output
    assert "attack_rate=0.125" in table.output
    as_json = runner.invoke(models_command, ["--json"])
    rows = json.loads(as_json.output)
    assert [row["name"] for row in rows] == ["default", "listed"]
    assert rows[1]["metrics"] == {"attack_rate": 0.125}
    (tiny_model_dir / MANIFEST_FILE).unlink()


def test_models_command_vllm_name(tiny_model_dir: Path, tiny_adapter_dirs: list[Path]) -> None:
    from inspect_misalign.cli import main

    register("vllm-base", tiny_model_dir)
    register("vllm-lora", tiny_adapter_dirs[0], base="vllm-base")
    runner = CliRunner()
    result = runner.invoke(main, ["models", "--vllm", "vllm-lora"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"vllm/{tiny_model_dir.resolve()}:{tiny_adapter_dirs[0].resolve()}"
    missing = runner.invoke(main, ["models", "--vllm", "nobody"])
    assert missing.exit_code == 2
    [line] = missing.output.strip().splitlines()
    assert line.startswith("Error: unknown model 'nobody'") and "inspect-misalign models" in line
    for directory in (tiny_model_dir, tiny_adapter_dirs[0]):
        (directory / MANIFEST_FILE).unlink()


def test_a_broken_index_is_a_one_line_error(tiny_model_dir: Path, misalign_home: Path) -> None:
    misalign_home.mkdir(parents=True, exist_ok=True)
    index_path().write_text('{"version": 1, "models": []}')
    with pytest.raises(ValueError, match="unreadable") as err:
        list_models()
    assert "\n" not in str(err.value)
    index_path().unlink()
    index_path().mkdir()
    with pytest.raises(ValueError, match="not a file"):
        list_models()
    index_path().rmdir()


def test_a_killed_writers_temp_index_is_removed_by_the_next_write(
    tiny_model_dir: Path, misalign_home: Path
) -> None:
    misalign_home.mkdir(parents=True, exist_ok=True)
    stale = misalign_home / ".index.json.abc123.tmp"  # what atomic_write_text leaves when killed
    stale.write_text("{half")
    register("organism", tiny_model_dir)
    assert not stale.exists() and [m.name for m in list_models()] == ["organism"]
    unregister("organism")
    (tiny_model_dir / MANIFEST_FILE).unlink()
