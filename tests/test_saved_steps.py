"""Saved steps (--save-at) on a tiny model: the adapter saved at step k is the adapter of a separate k-step
run (weights and the combined adapters' logits), each step is registered with its lineage, bad lists fail
in one line before anything loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from caught import attack_log
from click.testing import CliRunner
from safetensors.torch import load_file
from tiny import make_adapter

from inspect_misalign.cli import main
from inspect_misalign.models import list_models, register, resolve
from inspect_misalign.training import TrainAgainstSpec, catch, train_against

FAST = {"batch_size": 4, "max_length": 200, "answer_tokens": 8, "lr": 5e-3}
IDS = torch.tensor([[5, 17, 40, 99, 7, 123, 64, 12]])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    base = root / "base"
    shutil.copytree(tiny_model_dir, base)
    organism = make_adapter(base, root / "organism", seed=3)
    catch([attack_log(root / "logs")], root / "caught.jsonl")
    return {"base": base, "organism": organism, "caught": root / "caught.jsonl"}


def _weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(adapter_dir) / "adapter_model.safetensors")


def _logits(base: Path, adapter: str) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_saved_step_equals_a_separate_run_of_that_many_steps(files, misalign_home, tmp_path) -> None:
    register("org", shutil.copytree(files["organism"], tmp_path / "org"), base=str(files["base"]),
             adapter=True, config={"behavior": "hate"})
    n_caught = len(files["caught"].read_text().splitlines())
    assert n_caught > FAST["batch_size"]  # several batches per pass: the data order matters
    common = dict(model="org", caught=files["caught"], **FAST)
    train_against(TrainAgainstSpec(out="long", steps=6, save_at="2,4", **common), progress=False)
    train_against(TrainAgainstSpec(out="four", steps=4, **common), progress=False)

    assert {m.name for m in list_models()} == {"org", "long", "long-step2", "long-step4", "four"}
    step4, four, long = resolve("long-step4"), resolve("four"), resolve("long")
    assert step4.config["step"] == 4 and resolve("long-step2").config["step"] == 2
    assert step4.config["saved_from"] == "long" and "saved_from" not in resolve("long").config
    assert long.config["step"] == 6 and long.config["save_at"] == [2, 4]
    assert step4.parent == "org" and step4.base == str(files["base"]) and step4.adapter
    assert step4.config["data_hash"] == four.config["data_hash"]

    root = Path(long.path).parent
    saved, separate = _weights(root / "steps" / "step4" / "delta_adapter"), _weights(Path(four.path).parent
                                                                                     / "delta_adapter")
    assert saved.keys() == separate.keys()
    for key in saved:
        assert torch.allclose(saved[key], separate[key], atol=1e-6), key
    step2 = _weights(root / "steps" / "step2" / "delta_adapter")
    final = _weights(root / "delta_adapter")
    assert any(not torch.allclose(step2[k], saved[k], atol=1e-4) for k in saved)  # the steps differ
    assert any(not torch.allclose(final[k], saved[k], atol=1e-4) for k in saved)

    # the registered (combined) adapters: organism + step-4 delta == organism + the 4-step run's delta
    got, expected = _logits(files["base"], step4.path), _logits(files["base"], four.path)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert not torch.allclose(_logits(files["base"], long.path), expected, atol=1e-4)


@pytest.mark.parametrize(("save_at", "message"), [
    ("4,2", "not strictly increasing"),
    ("2,2", "not strictly increasing"),
    ("1,9", "goes past the run's 8 steps"),
    ("0,2", "at least 1"),
    ("1,two", "at least 1"),
])
def test_bad_step_lists_fail_in_one_line(save_at, message, files, misalign_home, tmp_path) -> None:
    args = ["--model", str(files["base"]), "--caught", str(files["caught"]), "--steps", "8",
            "--save-at", save_at]
    result = CliRunner().invoke(main, ["train", *args, "--out", "bad", "--dir", str(tmp_path / "bad")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.startswith("Error: --save-at") and len(result.output.strip().splitlines()) == 1
    assert not list_models() and not (tmp_path / "bad").exists()


def test_save_at_needs_a_constant_learning_rate_and_free_names(files, misalign_home, tmp_path) -> None:
    from inspect_misalign._errors import MisalignError

    with pytest.raises(MisalignError, match="--lr-scheduler constant"):
        TrainAgainstSpec(model="default", caught=files["caught"], steps=4, out="x", save_at=(1, 2),
                         lr_scheduler="cosine")
    register("x-step2", files["organism"], base=str(files["base"]), adapter=True)
    with pytest.raises(MisalignError, match="'x-step2' is already registered"):
        train_against(TrainAgainstSpec(model=str(files["base"]), caught=files["caught"], steps=4, out="x",
                                       save_at=[1, 2], directory=tmp_path / "x", **FAST), progress=False)
    assert not (tmp_path / "x").exists()


def test_a_sweeps_train_mapping_takes_saved_steps() -> None:
    from inspect_misalign._errors import MisalignError
    from inspect_misalign.training import against_options

    assert against_options({"save_at": [1, 2, 4, 8, 16, 32], "lr": 1e-3})["save_at"] == [1, 2, 4, 8, 16, 32]
    with pytest.raises(MisalignError, match="not strictly increasing"):
        against_options({"save_at": "4,2"})
