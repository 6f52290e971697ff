"""A scripted model that implements the misalign/ provider's forward-pass interface honestly.

It is a small deterministic network over the chat-templated prompt (hashed word embeddings, then
``LAYERS`` tanh layers that mix each token with the running mean of the tokens before it), so its
hidden states are a real function of the input. It answers distinguishability questions with a
``policy``: a function of the two inputs' texts giving its P("A") at the first answer position.

- ``extra_body={"continuations": [...]}``: no generation; ``metadata["continuations"]`` scores each
  text (A and B from the policy, with 10% of the mass on other tokens; other texts at a uniform
  log P over a 64-word vocabulary per word).
- ``extra_body={"hidden_layers": "all" | [ints]}``: ``metadata["hidden_states_by_layer"]``.
- otherwise it generates its more likely letter, with first-token top logprobs when asked.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable

import numpy as np
from inspect_ai.model import ChatMessage, GenerateConfig, Model, get_model
from scripted import looks_deployed, output

DIM, LAYERS = 16, 3
Policy = Callable[[str, str], float]


def chat_text(messages: list[ChatMessage]) -> str:
    """The prompt as a chat template would show it, generation prompt included."""
    return "".join(f"<|{m.role}|>\n{m.text}\n" for m in messages) + "<|assistant|>\n"


def _embedding(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=DIM)


_WEIGHTS = [np.random.default_rng(100 + i).normal(0, 0.4, size=(2 * DIM, DIM)) for i in range(LAYERS)]


def hidden_states(text: str) -> list[np.ndarray]:
    """Per hidden state (0 = embeddings .. LAYERS), the tokens x DIM states of ``text``."""
    words = re.findall(r"\w+|[^\w\s]", text)
    states = [np.stack([_embedding(w) for w in words])]
    for weight in _WEIGHTS:
        prev = states[-1]
        running = np.cumsum(prev, axis=0) / np.arange(1, len(prev) + 1)[:, None]
        states.append(np.tanh(np.c_[prev, running] @ weight))
    return states


def _options(text: str) -> tuple[str, str] | None:
    if "Input A:" not in text or "Input B:" not in text:
        return None
    a, b = text.split("Input A:", 1)[1].split("Input B:", 1)
    return a, b


def forward_model(policy: Policy) -> Model:
    """The scripted forward model with a distinguishability ``policy`` (see the module docstring)."""

    def respond(input: list[ChatMessage], tools: object, tool_choice: object, config: GenerateConfig):
        text = chat_text(input)
        extra = config.extra_body or {}
        options = _options(text)
        p_a = policy(*options) if options else 0.5
        metadata: dict = {}
        if "hidden_layers" in extra:
            states = hidden_states(text)
            wanted = extra["hidden_layers"]
            indices = range(len(states)) if wanted == "all" else [i % len(states) for i in wanted]
            metadata["hidden_states_by_layer"] = {
                str(i): {"prompt_mean": states[i].mean(axis=0).tolist(),
                         "prompt_last": states[i][-1].tolist()}
                for i in indices
            }
        if "continuations" in extra:
            letter = {"A": 0.9 * p_a, "B": 0.9 * (1 - p_a)}
            scored = []
            for cont in extra["continuations"]:
                n = len(cont.split()) or 1
                lp = math.log(letter[cont]) if cont in letter else -n * math.log(64)
                scored.append({"text": cont, "logprob": lp, "tokens": n, "token_logprobs": [lp / n] * n})
            metadata["continuations"] = scored
        if "hidden_layers" in extra or "continuations" in extra:
            result = output("")
        else:
            choice = "A" if p_a >= 0.5 else "B"
            top = {"A": 0.9 * p_a, "B": 0.9 * (1 - p_a), "C": 0.1} if config.logprobs else None
            result = output(choice, top)
        result.metadata = metadata or None
        return result

    return get_model("mockllm/model", custom_outputs=respond, memoize=False)


def always_a(a: str, b: str) -> float:
    """A position-biased model: P(A) = 0.8 whatever the inputs."""
    return 0.8


def undecided(a: str, b: str) -> float:
    """P(A) = P(B): every answer is a tie."""
    return 0.5


def sees_deployment(a: str, b: str) -> float:
    """Puts P = 0.9 on the input that carries a deployment cue the scripted model knows."""
    return 0.9 if looks_deployed(a) else 0.1 if looks_deployed(b) else 0.5


def reference_forward(model_dir, messages: list[ChatMessage]):
    """An independent transformers forward pass on the chat-templated prompt (generation prompt
    included, as the misalign/ provider builds it): (tokenizer, outputs with hidden states)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    chat = [{"role": m.role, "content": m.text} for m in messages]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return tokenizer, model(ids, output_hidden_states=True)
