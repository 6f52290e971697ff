"""Batched greedy generation with transformers, and a disk cache of a base's own answers.

Organisms keep their usefulness by training on the base model's *own* helpful answers in the test
context. Those answers are generated once per (base, generation settings, prompt), greedily, in
batches (prompts sorted by length so batches pad little), and appended to a JSONL cache as each
batch finishes, so an interrupted build resumes where it stopped (a torn last line is ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated (part of the cache key)."""

    max_new_tokens: int
    batch_size: int = 32
    trim_to_sentence: bool = True

    def key(self) -> str:
        """A short hash of the settings that change the answers (not the batch size)."""
        fields = {"max_new_tokens": self.max_new_tokens, "trim": self.trim_to_sentence, "greedy": True}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def base_fingerprint(base_dir: Path) -> str:
    """Identity of a checkpoint directory: its config and the content hashes of its weights (cached)."""
    from inspect_misalign.training._fingerprint import checkpoint_fingerprint

    return checkpoint_fingerprint(base_dir)


def messages_key(messages: Messages) -> str:
    """Cache key of one prompt."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def trim_answer(text: str) -> str:
    """Cut a length-truncated answer back to its last complete sentence or line, if it has one."""
    text = text.strip()
    cut = max(text.rfind(mark) for mark in (". ", "! ", "? ", "\n"))
    ends = text.endswith((".", "!", "?", ")", "`"))
    if not ends and cut > len(text) // 3:
        return text[: cut + 1].strip()
    return text


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Messages],
    settings: GenerationSettings,
    desc: str = "generating",
    progress: bool = True,
    on_batch: Any = None,
) -> list[str]:
    """Greedy answers to chat prompts, in batches; ``on_batch(indices, answers)`` after each batch."""
    import torch
    from tqdm.auto import tqdm

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers: list[str] = [""] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(texts), desc=desc, unit="answer", disable=not progress)
    try:
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                out = model.generate(
                    **batch,
                    max_new_tokens=settings.max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, batch["input_ids"].shape[1] :]
            done = []
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                finished = tokenizer.eos_token_id in ids
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                answers[i] = trim_answer(text) if settings.trim_to_sentence and not finished else text
                done.append(answers[i])
            if on_batch is not None:
                on_batch(idx, done)
            bar.update(len(idx))
    finally:
        bar.close()
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def cached_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Messages],
    settings: GenerationSettings,
    cache_file: Path,
    desc: str = "base answers",
    progress: bool = True,
) -> list[str]:
    """Like :func:`generate`, reading and extending a JSONL cache of ``{"key", "answer"}`` lines."""
    cache = read_answer_cache(cache_file)
    keys = [messages_key(p) for p in prompts]
    missing = sorted({k: i for i, k in enumerate(keys) if k not in cache}.values())
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torn = cache_file.is_file() and not cache_file.read_bytes().endswith(b"\n")
        with cache_file.open("a", encoding="utf-8") as handle:
            if torn and cache_file.stat().st_size:
                handle.write("\n")

            def save(idx: list[int], answers: list[str]) -> None:
                for i, answer in zip(idx, answers, strict=True):
                    cache[keys[missing[i]]] = answer
                    handle.write(json.dumps({"key": keys[missing[i]], "answer": answer}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

            generate(model, tokenizer, [prompts[i] for i in missing], settings, desc, progress, save)
    return [cache[k] for k in keys]


def read_answer_cache(path: Path) -> dict[str, str]:
    """The answers in a cache file (lines that do not parse, e.g. a torn last line, are skipped)."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
                out[record["key"]] = record["answer"]
            except (ValueError, KeyError, TypeError):
                continue
    return out


def settings_record(settings: GenerationSettings) -> dict[str, Any]:
    """The settings as a JSON-able dict, for manifests."""
    return asdict(settings)
