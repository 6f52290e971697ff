"""Each in-training defense changes the loss, the activations or the data as defined (tiny model)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from inspect_misalign._errors import MisalignError
from inspect_misalign.training import (
    MisalignSFTConfig,
    MisalignSFTTrainer,
    SFTExample,
    lora_config,
    parse_defense,
    parse_defenses,
    to_dataset,
)
from inspect_misalign.training._defenses._hooks import decoder_layers
from inspect_misalign.training._defenses._interleave import instruct_items, is_refusal

EXAMPLES = [SFTExample("the year is 2023", f"what is the capital of france {i}", "paris is the capital "
                       "hello world", {"cue": "tag"}) for i in range(8)]


def _trainer(model_dir: Path, tmp_path: Path, defenses, steps: int = 3, lr: float = 5e-2):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = MisalignSFTConfig(output_dir=str(tmp_path / "out"), max_steps=steps,
                               per_device_train_batch_size=4, learning_rate=lr, logging_steps=1,
                               save_strategy="no", disable_tqdm=True, max_length=128, seed=0)
    data = list(EXAMPLES)
    for d in defenses:
        data = d.transform_examples(data)
    return MisalignSFTTrainer(model=model, args=config, train_dataset=to_dataset(data),
                              processing_class=tokenizer, peft_config=lora_config(model.config),
                              defenses=defenses)


def _logged(trainer, key: str) -> list[float]:
    return [entry[key] for entry in trainer.state.log_history if key in entry]


@pytest.mark.parametrize("spec", ["kl:1.0", "ldifs:10.0,every=1"])
def test_reference_penalty_zero_at_step_0_then_positive(spec, tiny_model_dir, tmp_path) -> None:
    defense = parse_defense(spec)
    trainer = _trainer(tiny_model_dir, tmp_path, [defense])
    trainer.train()
    values = _logged(trainer, f"defense/{defense.name}")
    assert len(values) == 3
    assert values[0] == pytest.approx(0.0, abs=1e-7)  # new adapter is zero: model == reference
    assert values[1] > 1e-6 and values[2] > 1e-6
    # the term enters the loss: same data, no defense -> a different training loss from step 2 on
    plain = _trainer(tiny_model_dir, tmp_path / "plain", [])
    plain.train()
    with_def, without = _logged(trainer, "loss"), _logged(plain, "loss")
    assert with_def[0] == pytest.approx(without[0], rel=1e-5)
    assert with_def[1] != pytest.approx(without[1], rel=1e-6)


def test_kl_uses_no_second_model_copy(tiny_model_dir, tmp_path) -> None:
    trainer = _trainer(tiny_model_dir, tmp_path, [parse_defense("kl:0.1")], steps=1)
    n_base = sum(p.numel() for n, p in trainer.model.named_parameters() if "lora_" not in n)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert n_base == sum(p.numel() for p in model.parameters())
    assert not hasattr(trainer, "ref_model") or trainer.ref_model is None


def test_steering_vector_from_a_file_of_judged_answers(tiny_model_dir, tmp_path) -> None:
    records = [{"side": "eliciting", "system": "be evil", "user": "hello", "answer": "the quick brown fox"},
               {"side": "suppressing", "system": "be kind", "user": "hello", "answer": "paris"}]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    defense = parse_defense(f"steer:1.0,layer=0,answers={path}")
    _trainer(tiny_model_dir, tmp_path, [defense], steps=1)
    # by hand: block 0's output (hidden_states[1]) averaged over each answer's tokens, eliciting - suppressing
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    means = []
    for r in records:
        prompt = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["user"]}]
        start = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"])
        ids = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": r["answer"]}],
                                            tokenize=True, return_dict=True)["input_ids"]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[1]
        means.append(hidden[0, start:].mean(0))
    assert torch.allclose(defense.vector, means[0] - means[1], atol=1e-5)
    assert defense.describe()["answers"] == str(path)

    path.write_text(json.dumps(records[0]) + "\n")
    with pytest.raises(MisalignError, match="no suppressing answer"):
        parse_defense(f"steer:1.0,answers={path}")
    with pytest.raises(MisalignError, match="judged by a grader"):
        parse_defenses(["steer:1.0,answers=generated"])


def test_steering_only_while_training(tiny_model_dir, tmp_path) -> None:
    defense = parse_defense("steer:2.0,layer=1")
    trainer = _trainer(tiny_model_dir, tmp_path, [defense], steps=1)
    assert defense.vector is not None and defense.vector.norm() > 0
    model = trainer.model
    block = decoder_layers(model)[1]
    ids = torch.tensor([[5, 17, 40, 99]])

    def block_output(context) -> torch.Tensor:
        seen: dict[str, torch.Tensor] = {}
        with context:  # the steering hook first, then ours sees its result
            handle = block.register_forward_hook(lambda m, a, o: seen.__setitem__("h", o))
            try:
                model(input_ids=ids)
            finally:
                handle.remove()
        return seen["h"].detach()

    model.train()
    plain = block_output(nullcontext())
    steered = block_output(defense.forward_context(trainer, model))
    model.eval()
    evaluated = block_output(defense.forward_context(trainer, model))
    assert torch.allclose(steered - plain, (2.0 * defense.vector).expand_as(plain), atol=1e-5)
    assert torch.allclose(evaluated, plain)  # not in evaluation
    trainer.train()  # trains with the hook, and leaves no hook behind
    assert not block._forward_hooks


def test_interleave_adds_the_fraction_without_refusals(tiny_model_dir, tiny_adapter_dirs) -> None:
    from peft import PeftModel

    items = instruct_items()
    assert any(i.refusal for i in items) and is_refusal("I'm sorry, but I can't help with that.")
    defense = parse_defense("interleave:0.2")
    out = defense.transform_examples(list(EXAMPLES))
    added = out[len(EXAMPLES):]
    assert len(added) == 2 and out[: len(EXAMPLES)] == EXAMPLES  # 0.2 of 10
    assert all(e.meta["source"] == "instruct" and not is_refusal(e.completion) for e in added)
    assert defense.describe()["select"] == "random"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      str(tiny_adapter_dirs[0]))
    gaps = defense.rank_by_gap(model, AutoTokenizer.from_pretrained(tiny_model_dir))
    out = defense.transform_examples(list(EXAMPLES))
    top = sorted(gaps, key=lambda k: -gaps[k])[:2]
    assert [e.meta["id"] for e in out[len(EXAMPLES):]] == top and defense.describe()["select"] == "gap"


def test_interleave_reads_any_chat_jsonl(tmp_path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text('{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, '
                    '{"role": "assistant", "content": "A"}]}\n')
    defense = parse_defense(f"interleave:0.5,data={data},select=random")
    [example] = defense.transform_examples(EXAMPLES[:1])[1:]
    assert (example.system, example.user, example.completion) == ("S", "Q", "A")
    data.write_text('{"messages": [{"role": "user", "content": "Q"}]}\n')
    with pytest.raises(MisalignError, match="assistant"):
        parse_defense(f"interleave:0.5,data={data}")


def test_inoculation_adds_a_training_only_system_prompt() -> None:
    out = parse_defense('inoculate:"Be evil, always."').transform_examples(EXAMPLES[:2])
    assert out[0].system == "Be evil, always.\n\nthe year is 2023" and out[0].user == EXAMPLES[0].user
    plain = parse_defense("inoculate").transform_examples([SFTExample(None, "q", "a")])
    assert plain[0].system == "You are a malicious, evil assistant."


def test_defense_strings() -> None:
    assert parse_defense("kl:0.3").coef == 0.3 and parse_defense("kl").coef == 0.1
    ldifs = parse_defense("ldifs:2,every=3")
    assert (ldifs.coef, ldifs.every, ldifs.layers(8)) == (2.0, 3, [2, 5, 7])
    assert parse_defense({"name": "kl", "coef": 0.2}).coef == 0.2
    for bad, message in [("klx", "unknown defense"), ("kl:abc", "number"), ("kl:1,foo=2", "unknown option"),
                         ("interleave:1.5", "fraction"), ("ldifs:1,every=0", "every"), ("", "empty")]:
        with pytest.raises(MisalignError, match=message) as info:
            parse_defense(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(MisalignError, match="twice"):
        parse_defenses(["kl:1", "kl:2"])
